// A standalone @tus/server with @tus/file-store, for aetiket's upload benchmark.
//
//   node tus-server.mjs <directory> <host> <port>
//
// Serves tus at /files on <host>:<port> (port 0: the OS picks one), storing every upload
// as <directory>/<id>. Prints "listening on http://<host>:<port>/files" once it accepts
// connections; exits on SIGTERM or SIGINT. (tests/interop/node/tus-server.mjs is the same
// server bound to 127.0.0.1 only; the benchmark also runs it inside the WAN namespace.)
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [directory, host = "127.0.0.1", portArg = "0"] = process.argv.slice(2);
if (!directory) {
  console.error("usage: node tus-server.mjs <directory> [host] [port]");
  process.exit(2);
}

const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });

const http = tus.listen({ host, port: Number(portArg) }, () => {
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
