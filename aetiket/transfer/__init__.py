"""The transfer engine: tus protocol client, parallel uploads and Range downloads."""
