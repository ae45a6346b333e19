// tus-js-client (Node) as a benchmark peer: one upload of a file, timed.
//
//   node tus-upload.mjs '<json>'
//
// json: {"endpoint", "path", "parallel", "headers": {}, "metadata": {}, "chunkSize"?}.
// The file is read from its path (tus-js-client slices it for parallelUploads). Prints
// one JSON line {"seconds", "url"} when the upload is done; exits 1 on an error.
import fs from "node:fs";
import { Upload } from "tus-js-client";

const args = JSON.parse(process.argv[2]);
const options = {
  endpoint: args.endpoint,
  // tus-js-client takes the size from the file; uploadSize is refused with parallelUploads.
  parallelUploads: args.parallel ?? 1,
  headers: args.headers ?? {},
  metadata: args.metadata ?? {},
  retryDelays: null,
  storeFingerprintForResuming: false,
  removeFingerprintOnSuccess: false,
};
if (args.chunkSize) options.chunkSize = args.chunkSize;
const started = process.hrtime.bigint();
const upload = new Upload(fs.createReadStream(args.path), {
  ...options,
  onError(err) {
    console.error(`tus-js-client: ${err}`);
    process.exit(1);
  },
  onSuccess() {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(JSON.stringify({ seconds, url: upload.url }));
  },
});
upload.start();
