// A standalone @tus/server with @tus/file-store, for aetiket's interop tests.
//
//   node tus-server.mjs <directory> <port>
//
// Serves tus at /files on 127.0.0.1:<port> (0: the OS picks one), storing every upload
// as <directory>/<id> (its metadata in <directory>/<id>.json). Prints one line
// "listening on http://127.0.0.1:<port>/files" once it accepts connections; exits on
// SIGTERM or SIGINT.
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [directory, portArg = "0"] = process.argv.slice(2);
if (!directory) {
  console.error("usage: node tus-server.mjs <directory> [port]");
  process.exit(2);
}

const tus = new Server({
  path: "/files",
  datastore: new FileStore({ directory }),
});

const http = tus.listen({ host: "127.0.0.1", port: Number(portArg) }, () => {
  const { address, port } = http.address();
  console.log(`listening on http://${address}:${port}/files`);
});

function stop() {
  http.close(() => process.exit(0));
  http.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
