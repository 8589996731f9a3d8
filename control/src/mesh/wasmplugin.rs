//! The Istio target: the filter's configuration lives in the `spec.pluginConfig` of an Istio
//! `WasmPlugin` (`extensions.istio.io/v1alpha1`), read and written through the real `kubectl`.
//!
//! A change is one read and one write. The object is read (`kubectl get -o json`), its
//! `pluginConfig` parsed and compiled by the filter's own code, the change computed and
//! validated, and the object *as read* written back with the new `pluginConfig`
//! (`kubectl replace -f -`). The object keeps the `metadata.resourceVersion` it was read with,
//! so the API server refuses the write with 409 Conflict if anything changed the WasmPlugin in
//! between: nothing is overwritten, and the user is told to re-run.
//!
//! The history for `undo` is kept on the object itself, in the annotation [`HISTORY_ANNOTATION`]
//! (a JSON list of the previous `pluginConfig`s, oldest first, at most [`HISTORY_LEN`]): every
//! operator and CI job that can read the WasmPlugin sees the same history, and the history and
//! the configuration change in the same write, so neither is ever applied without the other.

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::{CanaryConfig, RoutingPlan};
use serde_json::{json, Value};

use crate::mesh::ecds::Update;
use crate::mesh::kubectl::{Kubectl, KubectlError};

/// The resource kubectl is asked for (fully qualified: no other group's `wasmplugins` can match).
pub const RESOURCE: &str = "wasmplugins.extensions.istio.io";

/// The annotation that holds the previous `pluginConfig`s for `undo`.
pub const HISTORY_ANNOTATION: &str = "canaryctl.canary-mesh.io/history";

/// The annotation that names the last canaryctl write (`{"by": "pid … (command line, since
/// …)", "config_hash": N}`, the hash of the configuration it wrote): a rollout that finds the
/// configuration changed under it says who changed it, when canaryctl did.
pub const LAST_WRITE_ANNOTATION: &str = "canaryctl.canary-mesh.io/last-write";

/// How many previous configurations the history keeps at most (a configuration is a few
/// hundred bytes to a few KiB; see [`ANNOTATIONS_LIMIT`] for big ones).
pub const HISTORY_LEN: usize = 10;

/// The API server's limit on all of an object's annotations together, keys and values
/// (`metadata.annotations: Too long: may not be more than 262144 bytes`). The history keeps
/// only as many of the newest configurations as fit beside the other annotations (kubectl
/// apply's last-applied copy of the whole object among them), so a write of a big
/// configuration shortens the history instead of being refused.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// The environment variable that names the WasmPlugin (`--wasmplugin`'s default).
pub const WASMPLUGIN_ENV: &str = "CANARY_WASMPLUGIN";

/// One WasmPlugin, and the kubectl that reaches it.
#[derive(Debug, Clone)]
pub struct WasmPlugin {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// How to reach it.
    pub kubectl: Kubectl,
}

/// The WasmPlugin as read.
#[derive(Debug, Clone)]
pub struct WasmPluginContents {
    /// The whole object, as the API server returned it.
    pub object: Value,
    /// Its `metadata.resourceVersion`: the version a write replaces.
    pub resource_version: String,
    /// The filter configuration in `spec.pluginConfig`.
    pub config: CanaryConfig,
    /// `config` compiled (the filter's validation passed).
    pub plan: RoutingPlan,
}

impl WasmPluginContents {
    /// The previous `pluginConfig`s in the history annotation, oldest first (an empty list
    /// when there is none).
    pub fn history(&self) -> Result<Vec<Value>> {
        match self.object["metadata"]["annotations"][HISTORY_ANNOTATION].as_str() {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(text).with_context(|| {
                format!("the annotation {HISTORY_ANNOTATION} is not a JSON list of configurations")
            }),
        }
    }
}

/// `NAMESPACE/NAME` split; both parts must be non-empty.
pub fn parse_reference(text: &str) -> Result<(String, String)> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => bail!("--wasmplugin: expected NAMESPACE/NAME, got {text:?}"),
    }
}

/// The filter configuration in `plugin_config` (a WasmPlugin's `spec.pluginConfig`), parsed
/// and compiled by the filter's own code.
pub fn parse_plugin_config(plugin_config: &Value) -> Result<(CanaryConfig, RoutingPlan)> {
    if plugin_config.is_null() {
        bail!("spec.pluginConfig is missing (the filter's configuration)");
    }
    let bytes = serde_json::to_vec(plugin_config)?;
    let config = CanaryConfig::from_json(&bytes)
        .context("spec.pluginConfig: the filter configuration is invalid")?;
    let plan = RoutingPlan::try_from(&config)
        .context("spec.pluginConfig: the filter configuration is invalid")?;
    Ok((config, plan))
}

impl WasmPlugin {
    /// The WasmPlugin `reference` (`NAMESPACE/NAME`) reached through `kubectl`.
    pub fn new(reference: &str, kubectl: Kubectl) -> Result<WasmPlugin> {
        let (namespace, name) = parse_reference(reference)?;
        Ok(WasmPlugin {
            namespace,
            name,
            kubectl,
        })
    }

    /// How it is named in messages: `wasmplugin NAMESPACE/NAME`.
    pub fn describe(&self) -> String {
        format!("wasmplugin {}/{}", self.namespace, self.name)
    }

    /// Reads the live object; its `pluginConfig` must pass the filter's validation.
    pub fn read(&self) -> Result<WasmPluginContents> {
        let bytes = self
            .kubectl
            .run(
                &[
                    "get",
                    RESOURCE,
                    &self.name,
                    "-n",
                    &self.namespace,
                    "-o",
                    "json",
                ],
                None,
            )
            .map_err(|err| self.failed("cannot read", err))?;
        let object: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: kubectl printed no JSON object", self.describe()))?;
        self.contents(object)
    }

    fn contents(&self, object: Value) -> Result<WasmPluginContents> {
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: no metadata.resourceVersion", self.describe()))?
            .to_string();
        let (config, plan) = parse_plugin_config(&object["spec"]["pluginConfig"])
            .with_context(|| self.describe())?;
        Ok(WasmPluginContents {
            object,
            resource_version,
            config,
            plan,
        })
    }

    /// kubectl's failure, said for this WasmPlugin; a conflict says that nothing was written.
    fn failed(&self, doing: &str, err: KubectlError) -> anyhow::Error {
        match err {
            KubectlError::Conflict(_) => anyhow!(
                "{} changed since canaryctl read it (someone or something else wrote it; who is \
                 unknown); nothing was written: re-run the command on the current version",
                self.describe()
            ),
            other => anyhow!("{doing} {}: {other}", self.describe()),
        }
    }

    /// The change `edit` makes to the live configuration, computed and validated; nothing is
    /// written. Returns the object as read too, the one a write replaces.
    pub fn preview(
        &self,
        edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(WasmPluginContents, Update)> {
        let before = self.read()?;
        let after = edit(&before.config)?;
        let after_plan =
            RoutingPlan::try_from(&after).context("the new configuration is invalid")?;
        let update = unwritten_update(&before, after, after_plan)?;
        Ok((before, update))
    }

    /// Runs `edit` on the live configuration and, unless a dry run or no change, writes the
    /// result with the previous configuration added to the history, replacing the version read
    /// (a concurrent change makes the write fail, and nothing is written). Returns the update
    /// and the resource version written.
    pub fn update(
        &self,
        dry_run: bool,
        edit: impl FnOnce(&CanaryConfig) -> Result<CanaryConfig>,
    ) -> Result<(Update, Option<String>)> {
        let (before, mut update) = self.preview(edit)?;
        if dry_run || !update.changed() {
            return Ok((update, None));
        }
        let mut history = before.history()?;
        history.push(before.object["spec"]["pluginConfig"].clone());
        let plugin_config = serde_json::to_value(&update.after)?;
        let written = self.replace(&before, plugin_config, &history)?;
        update.written = true;
        Ok((update, Some(written)))
    }

    /// What `undo` would put back: the last configuration of the history. Refused when there
    /// is none, or when it no longer passes the filter's validation.
    pub fn preview_undo(&self) -> Result<(WasmPluginContents, Update, Vec<Value>)> {
        let current = self.read()?;
        let mut history = current.history()?;
        let Some(previous) = history.pop() else {
            bail!(
                "no earlier version of {} to go back to (its annotation {HISTORY_ANNOTATION} holds \
                 none)",
                self.describe()
            );
        };
        let (config, plan) = parse_plugin_config(&previous)
            .with_context(|| format!("the last entry of {HISTORY_ANNOTATION}"))?;
        let update = unwritten_update(&current, config, plan)?;
        Ok((current, update, history))
    }

    /// Puts back the configuration before the last change and drops it from the history, in
    /// one write of the version read. Returns the update and the resource version written.
    pub fn undo(&self) -> Result<(Update, String)> {
        let (current, mut update, history) = self.preview_undo()?;
        let previous = serde_json::to_value(&update.after)?;
        let written = self.replace(&current, previous, &history)?;
        update.written = true;
        Ok((update, written))
    }

    /// Writes the object as read with `plugin_config` and `history`, through `kubectl replace`,
    /// keeping the resource version read; the resource version the server gave the new object.
    fn replace(
        &self,
        read: &WasmPluginContents,
        plugin_config: Value,
        history: &[Value],
    ) -> Result<String> {
        let mut object = read.object.clone();
        let (written_config, _) = parse_plugin_config(&plugin_config)?;
        let last_write = json!({
            "by": crate::mesh::ecds::holder_description(),
            "config_hash": canary_filter::metrics::config_hash(&written_config)?,
        })
        .to_string();
        object["spec"]["pluginConfig"] = plugin_config;
        let metadata = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| anyhow!("{}: no metadata", self.describe()))?;
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[LAST_WRITE_ANNOTATION] = Value::String(last_write);
        let others: usize = annotations
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.as_str() != HISTORY_ANNOTATION)
            .map(|(key, value)| key.len() + value.as_str().map_or(0, str::len))
            .sum();
        let budget = ANNOTATIONS_LIMIT.saturating_sub(others + HISTORY_ANNOTATION.len());
        annotations[HISTORY_ANNOTATION] = Value::String(history_within(history, budget)?);
        // The version read is the one replaced (it is in the object already; said again so
        // that no future edit of the object above can drop it).
        object["metadata"]["resourceVersion"] = Value::String(read.resource_version.clone());
        let body = serde_json::to_vec(&object)?;
        let reply = self
            .kubectl
            .run(&["replace", "-f", "-", "-o", "json"], Some(&body))
            .map_err(|err| self.failed("cannot write", err))?;
        let written: Value = serde_json::from_slice(&reply).with_context(|| {
            format!(
                "{} was replaced, but kubectl printed no JSON object",
                self.describe()
            )
        })?;
        Ok(written["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("unknown")
            .to_string())
    }
}

/// The history annotation's value: the newest configurations of `history` (oldest first), at
/// most [`HISTORY_LEN`] of them and at most `budget` bytes written.
fn history_within(history: &[Value], budget: usize) -> Result<String> {
    let mut kept = history.len().saturating_sub(HISTORY_LEN);
    loop {
        let text = serde_json::to_string(history.get(kept..).unwrap_or_default())?;
        if text.len() <= budget || kept >= history.len() {
            return Ok(text);
        }
        kept += 1;
    }
}

/// The change from the plugin's configuration as read to `after`, not yet written.
fn unwritten_update(
    before: &WasmPluginContents,
    after: CanaryConfig,
    after_plan: RoutingPlan,
) -> Result<Update> {
    Ok(Update {
        resource_name: None,
        before_bytes: config_bytes(&before.config)?,
        after_bytes: config_bytes(&after)?,
        before: before.config.clone(),
        before_plan: before.plan.clone(),
        after,
        after_plan,
        written: false,
    })
}

/// A configuration as the bytes an update compares: its JSON, as canaryctl writes it.
fn config_bytes(config: &CanaryConfig) -> Result<Vec<u8>> {
    Ok((serde_json::to_string_pretty(config)? + "\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_configurations_that_fit() {
        let history: Vec<Value> = ["a", "b", "c"]
            .iter()
            .map(|c| json!(c.repeat(10)))
            .collect();
        // Each entry is 12 bytes quoted; the list adds brackets and commas.
        let all = r#"["aaaaaaaaaa","bbbbbbbbbb","cccccccccc"]"#;
        let two = r#"["bbbbbbbbbb","cccccccccc"]"#;
        assert_eq!((all.len(), two.len()), (40, 27));
        assert_eq!(history_within(&history, 40).unwrap(), all);
        assert_eq!(history_within(&history, 39).unwrap(), two);
        assert_eq!(history_within(&history, 27).unwrap(), two);
        assert_eq!(history_within(&history, 26).unwrap(), r#"["cccccccccc"]"#);
        assert_eq!(history_within(&history, 1).unwrap(), "[]");
        let many: Vec<Value> = (0..HISTORY_LEN + 3).map(|i| json!(i)).collect();
        assert_eq!(
            history_within(&many, usize::MAX).unwrap(),
            "[3,4,5,6,7,8,9,10,11,12]"
        );
    }

    #[test]
    fn a_reference_is_namespace_slash_name() {
        assert_eq!(
            parse_reference("shop/canary-filter").unwrap(),
            ("shop".to_string(), "canary-filter".to_string())
        );
        for bad in ["canary-filter", "/x", "x/", "a/b/c"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_invalid_plugin_config_is_refused_by_the_filter_code() {
        let missing = parse_plugin_config(&Value::Null).unwrap_err();
        assert!(format!("{missing:#}").contains("spec.pluginConfig is missing"));
        let invalid =
            parse_plugin_config(&json!({"versions": [], "default": "stable"})).unwrap_err();
        assert!(format!("{invalid:#}")
            .starts_with("spec.pluginConfig: the filter configuration is invalid"));
        let valid = json!({"versions": [{"name": "stable", "cluster": "a"}, {"name": "canary", "cluster": "b"}],
                           "default": "stable", "weights": {"canary": 5}});
        let (config, plan) = parse_plugin_config(&valid).unwrap();
        assert_eq!(
            (config.default.as_str(), plan.versions().len()),
            ("stable", 2)
        );
    }
}
