// Validates a stream of JSON Kubernetes documents (separated by `---` lines, as `canaryctl
// istio` prints them) against the OpenAPI schemas of Istio's CRDs, as packaged in npm's
// @kubernetes-models/istio, and of Kubernetes' own kinds (the ConfigMap), as packaged in npm's
// kubernetes-models (both installed into .node/ by `make istio-schemas`). Prints one line per
// document; exits 1 if any is refused or of a kind it has no schema for.
import { readFileSync } from "node:fs";

// By file: the package lives in .node/, outside this script's module resolution.
const istio = new URL("../../.node/node_modules/@kubernetes-models/istio/", import.meta.url);
const kubernetes = new URL("../../.node/node_modules/kubernetes-models/", import.meta.url);
const models = {
  "extensions.istio.io/v1alpha1/WasmPlugin": new URL("extensions.istio.io/v1alpha1/WasmPlugin.js", istio),
  "networking.istio.io/v1alpha3/EnvoyFilter": new URL("networking.istio.io/v1alpha3/EnvoyFilter.js", istio),
  "networking.istio.io/v1/DestinationRule": new URL("networking.istio.io/v1/DestinationRule.js", istio),
  "networking.istio.io/v1/VirtualService": new URL("networking.istio.io/v1/VirtualService.js", istio),
  "networking.istio.io/v1beta1/DestinationRule": new URL("networking.istio.io/v1beta1/DestinationRule.js", istio),
  "networking.istio.io/v1beta1/VirtualService": new URL("networking.istio.io/v1beta1/VirtualService.js", istio),
  "v1/ConfigMap": new URL("v1/ConfigMap.js", kubernetes),
};

let failed = false;
const text = readFileSync(process.argv[2], "utf8");
for (const part of text.split(/^---$/m)) {
  if (part.trim() === "") continue;
  const doc = JSON.parse(part);
  const key = `${doc.apiVersion}/${doc.kind}`;
  const module = models[key];
  if (!module) {
    console.log(`no schema for ${key}`);
    failed = true;
    continue;
  }
  const exported = await import(module);
  const Model = exported[doc.kind];
  try {
    new Model(doc).validate();
    console.log(`valid ${key} ${doc.metadata?.name}`);
  } catch (err) {
    console.log(`refused ${key} ${doc.metadata?.name}: ${err.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
