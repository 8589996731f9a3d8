//! What a real Kubernetes API server with Istio installed checks on a write of a WasmPlugin,
//! for the stand-in (`kube.rs`), in the order it checks them, each refusal answered with the
//! `Status` the API server writes (which the real kubectl turns into its message):
//!
//! 1. The object's metadata: the annotations together at most 256 KiB (apimachinery's
//!    `ValidateAnnotationsSize`), 422 Invalid.
//! 2. The CRD's structural schema (types, enums, patterns, lengths, bounds, required fields), as
//!    npm's `@kubernetes-models/istio` packages it, run by `tests/harness/wasmplugin-schema.mjs` with
//!    Node; 422 Invalid, each violation a cause worded as the API server words it.
//! 3. The CRD's `x-kubernetes-validations` (CEL), which that package does not carry: the rules
//!    of istio/api's `kubernetes/customresourcedefinitions.gen.yaml` (at b8f8791d96) for the
//!    WasmPlugin, written out here one by one ([`cel_rules`]); 422 Invalid.
//! 4. istiod's validating webhook (`validation.istio.io`, istio/istio
//!    `pkg/config/validation/validation.go`, `ValidateWasmPlugin`): 400, with the webhook's
//!    message ([`istiod_webhook`]).
//!
//! Also the keys of the CRD's list-maps (`x-kubernetes-list-type: map`) are unique, 422.
//!
//! Not checked: unknown fields outside `pluginConfig` (the API server's strict field
//! validation; the package's schema does not list the known fields), and the field managers of
//! server-side apply.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::Result;

/// apimachinery's `TotalAnnotationSizeLimitB`.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// One refused field, as a `Status` cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueTooLong`.
    pub reason: &'static str,
    /// The field's path: `spec.url`, `spec.match[0].ports[0].number`.
    pub field: String,
    /// What is wrong with it (the API server's `ErrorBody`).
    pub message: String,
}

impl Cause {
    fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }
}

/// The refusal of a write, if the real API server (with Istio) would refuse `object`: the HTTP
/// code and the `Status` body. `Err` when the schema check itself could not run.
pub fn check_wasmplugin(object: &Value) -> Result<Option<(u16, Value)>> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = metadata(object);
    causes.extend(structural(object)?);
    causes.extend(list_map_keys(&object["spec"]));
    causes.extend(cel_rules(&object["spec"]));
    if !causes.is_empty() {
        return Ok(Some((422, invalid_status(name, &causes))));
    }
    Ok(istiod_webhook(&object["spec"]).map(|message| (400, webhook_status(&message))))
}

/// ObjectMeta's checks that a write of this object can fail.
fn metadata(object: &Value) -> Vec<Cause> {
    let size: usize = object["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| key.len() + value.as_str().map_or(0, str::len))
        .sum();
    if size > ANNOTATIONS_LIMIT {
        return vec![Cause {
            reason: "FieldValueTooLong",
            field: "metadata.annotations".into(),
            message: format!("Too long: may not be more than {ANNOTATIONS_LIMIT} bytes"),
        }];
    }
    Vec::new()
}

/// The structural schema's refusals (Node running the packaged schema).
fn structural(object: &Value) -> Result<Vec<Cause>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("wasmplugin-schema.mjs");
    let modules = crate::envoy::repo_root().join(".node/node_modules/@kubernetes-models/istio");
    if !modules.is_dir() {
        return Err(format!(
            "{} is missing: run `make istio-schemas` (the stand-in checks writes against Istio's CRD schema)",
            modules.display()
        )
        .into());
    }
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run node for the WasmPlugin schema: {err}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(object.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(format!(
            "the WasmPlugin schema check failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let errors: Vec<Value> = serde_json::from_slice(&output.stdout)?;
    Ok(errors
        .iter()
        .map(|error| schema_cause(object, error))
        .collect())
}

/// A JSON pointer (`/spec/match/0/ports/0/number`) as the API server names the field
/// (`spec.match[0].ports[0].number`).
fn field_path(pointer: &str) -> String {
    let mut path = String::new();
    for part in pointer.split('/').filter(|part| !part.is_empty()) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.bytes().all(|b| b.is_ascii_digit()) {
            path.push_str(&format!("[{part}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&part);
        }
    }
    path
}

/// A value as the API server quotes it in a message: strings quoted, numbers bare.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => "null".into(),
        Value::Array(_) => "\"array\"".into(),
        Value::Object(_) => "\"object\"".into(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// One violation reported by the packaged schema (Ajv's error: `instancePath`, `keyword`,
/// `params`), worded as kube-openapi's validator words it in the API server's answer.
fn schema_cause(object: &Value, error: &Value) -> Cause {
    let pointer = error["instancePath"].as_str().unwrap_or_default();
    let field = field_path(pointer);
    let value = object.pointer(pointer).cloned().unwrap_or(Value::Null);
    let params = &error["params"];
    let limit = &params["limit"];
    match error["keyword"].as_str().unwrap_or_default() {
        "required" => {
            let missing = params["missingProperty"].as_str().unwrap_or_default();
            let field = if field.is_empty() {
                missing.to_string()
            } else {
                format!("{field}.{missing}")
            };
            Cause {
                reason: "FieldValueRequired",
                field,
                message: "Required value".into(),
            }
        }
        "enum" => {
            let allowed: Vec<String> = params["allowedValues"]
                .as_array()
                .into_iter()
                .flatten()
                .map(shown)
                .collect();
            Cause {
                reason: "FieldValueNotSupported",
                field,
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(&value),
                    allowed.join(", ")
                ),
            }
        }
        "type" => {
            let actual = type_name(&value);
            Cause {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{actual}\": {field} in body must be of type {}: \"{actual}\"",
                    params["type"].as_str().unwrap_or_default()
                ),
                field,
            }
        }
        "pattern" => {
            let detail = format!(
                "{field} in body should match '{}'",
                params["pattern"].as_str().unwrap_or_default()
            );
            Cause::invalid(field, &shown(&value), &detail)
        }
        "maxLength" => Cause {
            reason: "FieldValueTooLong",
            field,
            message: format!("Too long: may not be more than {limit} bytes"),
        },
        "minLength" => {
            let detail = format!("{field} in body should be at least {limit} chars long");
            Cause::invalid(field, &shown(&value), &detail)
        }
        "maximum" => {
            let detail = format!("{field} in body should be less than or equal to {limit}");
            Cause::invalid(field, &shown(&value), &detail)
        }
        "minimum" => {
            let detail = format!("{field} in body should be greater than or equal to {limit}");
            Cause::invalid(field, &shown(&value), &detail)
        }
        "maxItems" => Cause {
            reason: "FieldValueTooMany",
            field,
            message: format!("Too many: must have at most {limit} items"),
        },
        "maxProperties" => Cause {
            reason: "FieldValueTooMany",
            field,
            message: format!("Too many: must have at most {limit} items"),
        },
        other => {
            let detail = format!("{field} in body fails the schema's {other} ({params})");
            Cause::invalid(field, &shown(&value), &detail)
        }
    }
}

/// The CRD's `x-kubernetes-list-type: map` lists, whose items must differ in their keys:
/// `spec.match[].ports` by `number`, `spec.vmConfig.env` by `name`.
fn list_map_keys(spec: &Value) -> Vec<Cause> {
    let mut lists: Vec<(String, &Value, &str)> = vec![(
        "spec.vmConfig.env".to_string(),
        &spec["vmConfig"]["env"],
        "name",
    )];
    for (i, selector) in spec["match"].as_array().into_iter().flatten().enumerate() {
        lists.push((
            format!("spec.match[{i}].ports"),
            &selector["ports"],
            "number",
        ));
    }
    let mut causes = Vec::new();
    for (path, list, key) in lists {
        let mut seen: Vec<&Value> = Vec::new();
        for (i, item) in list.as_array().into_iter().flatten().enumerate() {
            let value = &item[key];
            if seen.contains(&value) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("{path}[{i}]"),
                    message: format!(
                        "Duplicate value: map[string]interface {{}}{{\"{key}\":{value}}}"
                    ),
                });
            }
            seen.push(value);
        }
    }
    causes
}

/// The WasmPlugin CRD's `x-kubernetes-validations` rules, each as its CEL rule reads (quoted
/// above it), with the CRD's message; a failed rule is answered as the API server answers it
/// (`Invalid value: "<the field's type>": <message>`).
pub fn cel_rules(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(fields) = spec.as_object() else {
        return causes;
    };
    // spec: `(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) +
    // (has(self.targetRefs) ? 1 : 0) <= 1`
    let set = ["selector", "targetRef", "targetRefs"]
        .iter()
        .filter(|name| fields.contains_key(**name))
        .count();
    if set > 1 {
        causes.push(Cause::invalid(
            "spec",
            "\"object\"",
            "only one of targetRefs or selector can be set",
        ));
    }
    if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
        // matchLabels: `self.all(key, !key.contains("*"))`, `self.all(key, key.size() != 0)`
        if labels.keys().any(|key| key.contains('*')) {
            causes.push(Cause::invalid(
                "spec.selector.matchLabels",
                "\"object\"",
                "wildcard not allowed in label key match",
            ));
        }
        if labels.keys().any(String::is_empty) {
            causes.push(Cause::invalid(
                "spec.selector.matchLabels",
                "\"object\"",
                "key must not be empty",
            ));
        }
        // each value: `!self.contains("*")`
        for (key, value) in labels {
            if value.as_str().is_some_and(|value| value.contains('*')) {
                causes.push(Cause::invalid(
                    format!("spec.selector.matchLabels[{key}]"),
                    "\"string\"",
                    "wildcard not allowed in label value match",
                ));
            }
        }
    }
    // targetRef.namespace, targetRefs[].namespace: `self.size() == 0`
    let mut references: Vec<(String, &Value)> = vec![("spec.targetRef".into(), &spec["targetRef"])];
    for (i, reference) in spec["targetRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        references.push((format!("spec.targetRefs[{i}]"), reference));
    }
    for (path, reference) in references {
        if reference["namespace"]
            .as_str()
            .is_some_and(|ns| !ns.is_empty())
        {
            causes.push(Cause::invalid(
                format!("{path}.namespace"),
                "\"string\"",
                "cross namespace referencing is not currently supported",
            ));
        }
    }
    // url: `isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) :
    // (isURL("http://" + self) && url("http://" + self).getScheme() in [...])`
    if let Some(url) = spec["url"].as_str() {
        if !url_scheme_allowed(url) {
            causes.push(Cause::invalid(
                "spec.url",
                "\"string\"",
                "url must have schema one of [http, https, file, oci]",
            ));
        }
    }
    // vmConfig.env[]: `(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)`
    for (i, env) in spec["vmConfig"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if env["valueFrom"] == "HOST" && env.get("value").is_some() {
            causes.push(Cause::invalid(
                format!("spec.vmConfig.env[{i}]"),
                "\"object\"",
                "value may only be set when valueFrom is INLINE",
            ));
        }
    }
    causes
}

/// The scheme of `text` when it reads as an absolute URL (`scheme:` followed by more, the
/// scheme a letter then letters, digits, `+`, `-`, `.`), as Go's `url.ParseRequestURI` and
/// Kubernetes' CEL `isURL` take it.
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty())
    .then_some(scheme)
}

/// The CRD's url rule: a URL's scheme must be one of Istio's; a text without one is read as
/// `http://` + it (an image reference, which istiod takes as `oci://`).
fn url_scheme_allowed(url: &str) -> bool {
    let allowed = |scheme: &str| {
        ["", "http", "https", "oci", "file"].contains(&scheme.to_ascii_lowercase().as_str())
    };
    let parses = |text: &str| !text.chars().any(|c| c.is_whitespace() || c.is_control());
    match scheme_of(url) {
        Some(scheme) => parses(url) && allowed(scheme),
        None => parses(url),
    }
}

/// istiod's `ValidateWasmPlugin`: the message its webhook denies the write with, if it does
/// (one error as it is; several as hashicorp's multierror lists them).
pub fn istiod_webhook(spec: &Value) -> Option<String> {
    let mut errors: Vec<String> = Vec::new();
    let set = [
        spec.get("selector").is_some(),
        spec.get("targetRef").is_some(),
        spec["targetRefs"]
            .as_array()
            .is_some_and(|refs| !refs.is_empty()),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if set > 1 {
        errors.push("only one of targetRefs or workloadSelector can be set".into());
    }
    for (key, value) in spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let value = value.as_str().unwrap_or_default();
        if key.is_empty() {
            errors.push(format!(
                "empty key is not supported in selector: \"{key}={value}\""
            ));
        }
        if key.contains('*') || value.contains('*') {
            errors.push(format!(
                "wildcard is not supported in selector: \"{key}={value}\""
            ));
        }
    }
    let url = spec["url"].as_str().unwrap_or_default();
    if url.is_empty() {
        errors.push("url field needs to be set".into());
    } else if let Some(scheme) = scheme_of(url) {
        if !["file", "http", "https", "oci"].contains(&scheme) {
            errors.push(format!("url contains unsupported scheme: {scheme}"));
        }
    }
    let sha = spec["sha256"].as_str().unwrap_or_default();
    if !sha.is_empty() {
        if sha.len() != 64 {
            errors.push("sha256 field must be 64 characters long".into());
        } else if !sha.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
            errors.push("sha256 field must match [a-f0-9]{64} pattern".into());
        }
    }
    if spec["imagePullSecret"]
        .as_str()
        .is_some_and(|s| s.len() > 253)
    {
        errors.push("imagePullSecret field must be less than 253 characters long".into());
    }
    if spec["pluginName"].as_str().is_some_and(|s| s.len() > 256) {
        errors.push("pluginName field must be less than 255 characters long".into());
    }
    let mut names = Vec::new();
    for env in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errors.push("spec.vmConfig.env invalid".into());
            break;
        }
        if name.len() > 256 {
            errors.push("env.name field must be less than 255 characters long".into());
            break;
        }
        if names.contains(&name) {
            errors.push("duplicate env".into());
            break;
        }
        names.push(name);
        if env["valueFrom"].as_str().unwrap_or("INLINE") != "INLINE"
            && env["value"].as_str().is_some_and(|v| !v.is_empty())
        {
            errors.push("value may only be set when valueFrom is INLINE".into());
            break;
        }
    }
    'matches: for (i, selector) in spec["match"].as_array().into_iter().flatten().enumerate() {
        for (j, port) in selector["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let number = port["number"].as_i64().unwrap_or(0);
            if number <= 0 || number > 65535 {
                errors.push(format!(
                    "spec.Match[{i}].Ports[{j}] is out of range: {number}"
                ));
                break 'matches;
            }
        }
    }
    match errors.as_slice() {
        [] => None,
        [one] => Some(format!("configuration is invalid: {one}")),
        many => Some(format!(
            "configuration is invalid: {} errors occurred:\n{}\n\n",
            many.len(),
            many.iter()
                .map(|error| format!("\t* {error}"))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// The API server's 422 for a WasmPlugin `name` with `causes` (apimachinery's `NewInvalid`).
fn invalid_status(name: &str, causes: &[Cause]) -> Value {
    let errors: Vec<String> = causes
        .iter()
        .map(|cause| format!("{}: {}", cause.field, cause.message))
        .collect();
    let aggregate = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("WasmPlugin.extensions.istio.io \"{name}\" is invalid: {aggregate}"),
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": "extensions.istio.io",
            "kind": "WasmPlugin",
            "causes": causes.iter().map(|cause| json!({
                "reason": cause.reason,
                "message": cause.message,
                "field": cause.field,
            })).collect::<Vec<_>>(),
        },
        "code": 422,
    })
}

/// The API server's answer when the webhook `validation.istio.io` denies a write with
/// `message` (apiserver's `ToStatusErr`: code 400, no reason, since istiod gives none).
fn webhook_status(message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("admission webhook \"validation.istio.io\" denied the request: {message}"),
        "code": 400,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: Value) -> Value {
        let mut spec = json!({"selector": {"matchLabels": {"app": "frontend"}},
                              "url": "oci://registry.example.com/canary-filter:0.1.0",
                              "phase": "STATS", "pluginConfig": {}});
        for (key, value) in extra.as_object().unwrap() {
            spec[key] = value.clone();
        }
        spec
    }

    #[test]
    fn the_crds_rules_refuse_what_they_say() {
        assert_eq!(cel_rules(&spec(json!({}))), Vec::new());
        let messages = |extra: Value| -> Vec<String> {
            cel_rules(&spec(extra))
                .into_iter()
                .map(|cause| format!("{}: {}", cause.field, cause.message))
                .collect()
        };
        assert_eq!(
            messages(json!({"targetRefs": [{"kind": "Gateway", "name": "g", "namespace": "other"}]})),
            [
                "spec: Invalid value: \"object\": only one of targetRefs or selector can be set",
                "spec.targetRefs[0].namespace: Invalid value: \"string\": cross namespace referencing is not currently supported",
            ]
        );
        assert_eq!(
            messages(json!({"selector": {"matchLabels": {"app*": "front*"}}})),
            [
                "spec.selector.matchLabels: Invalid value: \"object\": wildcard not allowed in label key match",
                "spec.selector.matchLabels[app*]: Invalid value: \"string\": wildcard not allowed in label value match",
            ]
        );
        for (url, allowed) in [
            ("oci://r.example/c:1", true),
            ("file:///opt/p.wasm", true),
            ("https://r.example/p.wasm", true),
            ("r.example/c:1", true),
            ("ftp://r.example/p.wasm", false),
            ("s3://bucket/p.wasm", false),
        ] {
            assert_eq!(messages(json!({"url": url})).is_empty(), allowed, "{url}");
        }
        assert_eq!(
            messages(json!({"vmConfig": {"env": [{"name": "A", "valueFrom": "HOST", "value": "x"}]}})),
            ["spec.vmConfig.env[0]: Invalid value: \"object\": value may only be set when valueFrom is INLINE"]
        );
    }

    #[test]
    fn istiods_webhook_denies_as_istiod_does() {
        assert_eq!(istiod_webhook(&spec(json!({}))), None);
        assert_eq!(
            istiod_webhook(&spec(json!({"sha256": "abc"}))).as_deref(),
            Some("configuration is invalid: sha256 field must be 64 characters long")
        );
        assert_eq!(
            istiod_webhook(&spec(json!({"url": "", "match": [{"ports": [{"number": 0}]}]}))).as_deref(),
            Some("configuration is invalid: 2 errors occurred:\n\t* url field needs to be set\n\t* spec.Match[0].Ports[0] is out of range: 0\n\n")
        );
    }

    #[test]
    fn fields_are_named_as_the_api_server_names_them() {
        assert_eq!(
            field_path("/spec/match/0/ports/1/number"),
            "spec.match[0].ports[1].number"
        );
        assert_eq!(
            field_path("/metadata/annotations/a~1b"),
            "metadata.annotations.a/b"
        );
        let status = invalid_status(
            "x",
            &[Cause::invalid(
                "spec.sha256",
                "\"abc\"",
                "spec.sha256 in body should match '(^$|^[a-f0-9]{64}$)'",
            )],
        );
        assert_eq!(
            status["message"],
            "WasmPlugin.extensions.istio.io \"x\" is invalid: spec.sha256: Invalid value: \"abc\": spec.sha256 in body should match '(^$|^[a-f0-9]{64}$)'"
        );
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "spec.sha256");
    }
}
