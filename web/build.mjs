// Bundles the chat page into dist/: content-hashed assets under dist/assets and an index.html that names them.
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, "dist");

await rm(dist, { recursive: true, force: true });

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { app: "src/main.ts", styles: "src/styles.css" },
  outdir: "dist/assets",
  entryNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome111", "firefox111", "safari16.4"],
  metafile: true,
  logLevel: "warning",
});

const outputFor = (entryPoint, extension) => {
  const found = Object.entries(result.metafile.outputs).find(
    ([file, output]) => output.entryPoint === entryPoint && file.endsWith(extension),
  );
  if (!found) {
    throw new Error(`esbuild produced no ${extension} output for ${entryPoint}`);
  }
  return path.relative(dist, path.join(root, found[0])).split(path.sep).join("/");
};

// Relative asset paths keep the page working behind a path prefix (a reverse proxy's sub-path).
const template = await readFile(path.join(root, "index.html"), "utf8");
const html = template
  .replace("{{js}}", outputFor("src/main.ts", ".js"))
  .replace("{{css}}", outputFor("src/styles.css", ".css"));
if (html.includes("{{")) {
  throw new Error("index.html has a placeholder that the build does not fill.");
}
await writeFile(path.join(dist, "index.html"), html);

for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (!file.endsWith(".map")) {
    console.log(`${file}  ${(output.bytes / 1024).toFixed(1)} KiB`);
  }
}
