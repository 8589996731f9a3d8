// The structural schema of Istio's WasmPlugin CRD (extensions.istio.io/v1alpha1), as npm's
// @kubernetes-models/istio packages it (compiled from Istio's published CRDs; `make
// istio-schemas` installs it into .node/), for the stand-in API server (tests/harness/src/kube.rs):
// reads one object as JSON on standard input, prints the schema's refusals as a JSON list
// (empty when it passes). The package carries the types, enums, patterns, lengths and bounds,
// not the CRD's x-kubernetes-validations rules: the stand-in checks those itself
// (tests/harness/src/istio_schema.rs).
import { readFileSync } from "node:fs";

const schemas = new URL("../../.node/node_modules/@kubernetes-models/istio/_schemas/", import.meta.url);
const { validate } = await import(new URL("ExtensionsIstioIoV1alpha1WasmPlugin.js", schemas));

const object = JSON.parse(readFileSync(0, "utf8"));
validate(object);
console.log(JSON.stringify(validate.errors ?? []));
