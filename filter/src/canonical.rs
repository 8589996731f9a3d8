//! The canonical form of a parsed configuration, the bytes [`crate::metrics::config_hash`]
//! hashes: the configuration as serde_json's compact writer writes it (fields in declaration
//! order, maps sorted, numbers in shortest form, optional fields and defaults left out as the
//! `skip_serializing_if`s of [`crate::config`] say), byte for byte for every configuration the
//! filter accepts, so that the hash of a configuration is the one it always was.
//!
//! Written here rather than by `serde_json::to_vec`: the filter calls it once per configuration,
//! and serde_json's writer (its serializer, its float formatting) was about 10 KiB of the
//! `.wasm` that nothing else needs (BENCHMARKS.md, "What the module is made of"). The tests
//! compare the two writers on configurations that use every field, number and escape.

use std::collections::BTreeMap;

use crate::json_write::{number, string};

use crate::config::{
    CanaryConfig, KeySource, MatchSpec, MirrorSpec, RuleSpec, StickySpec, WhenMissing, WhenSpec,
};

/// The configuration as serde_json's compact writer writes it.
pub fn canonical_form(config: &CanaryConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    object(&mut out, |fields| {
        if let Some(service) = &config.service {
            string(fields.field("service"), service);
        }
        if let Some(hosts) = &config.hosts {
            array(fields.field("hosts"), hosts, |out, host| string(out, host));
        }
        array(
            fields.field("versions"),
            &config.versions,
            |out, version| {
                object(out, |fields| {
                    string(fields.field("name"), &version.name);
                    string(fields.field("cluster"), &version.cluster);
                });
            },
        );
        string(fields.field("default"), &config.default);
        weights(fields.field("weights"), &config.weights);
        if let Some(sticky) = &config.sticky {
            self::sticky(fields.field("sticky"), sticky);
        }
        if let Some(region) = &config.region {
            object(fields.field("region"), |fields| {
                string(fields.field("header"), &region.header);
            });
        }
        array(fields.field("rules"), &config.rules, rule);
        string(fields.field("route_header"), &config.route_header);
        string(fields.field("version_header"), &config.version_header);
        if config.response_version_header {
            fields.field("response_version_header").extend(b"true");
        }
        if !config.metrics.is_all() {
            let metrics = config.metrics;
            object(fields.field("metrics"), |fields| {
                boolean(fields.field("requests"), metrics.requests);
                boolean(fields.field("responses"), metrics.responses);
                boolean(fields.field("latency"), metrics.latency);
            });
        }
        if !config.features.is_empty() {
            object(fields.field("features"), |fields| {
                for (name, feature) in &config.features {
                    object(fields.field(name), |fields| {
                        number(fields.field("percent"), feature.percent);
                    });
                }
            });
        }
        if let Some(header) = &config.features_header {
            string(fields.field("features_header"), header);
        }
        if let Some(spec) = &config.mirror {
            mirror(fields.field("mirror"), spec);
        }
    });
    out
}

fn mirror(out: &mut Vec<u8>, spec: &MirrorSpec) {
    object(out, |fields| {
        string(fields.field("version"), &spec.version);
        number(fields.field("percent"), spec.percent);
        if let Some(sampling) = &spec.sampling {
            string(fields.field("sampling"), sampling);
        }
        if let Some(seed) = spec.seed {
            fields.field("seed").extend(seed.to_string().as_bytes());
        }
        string(fields.field("header"), &spec.header);
        array(fields.field("methods"), &spec.methods, |out, method| {
            string(out, method)
        });
        if !spec.exclude_paths.is_empty() {
            array(
                fields.field("exclude_paths"),
                &spec.exclude_paths,
                |out, path| string(out, path),
            );
        }
    });
}

fn sticky(out: &mut Vec<u8>, sticky: &StickySpec) {
    object(out, |fields| {
        array(fields.field("keys"), &sticky.keys, |out, key| {
            object(out, |fields| match key {
                KeySource::Header(name) => string(fields.field("header"), name),
                KeySource::Cookie(name) => string(fields.field("cookie"), name),
            });
        });
        fields
            .field("seed")
            .extend(sticky.seed.to_string().as_bytes());
        let when_missing = match sticky.when_missing {
            WhenMissing::Random => "random",
            WhenMissing::Default => "default",
        };
        string(fields.field("when_missing"), when_missing);
    });
}

fn rule(out: &mut Vec<u8>, rule: &RuleSpec) {
    object(out, |fields| {
        string(fields.field("name"), &rule.name);
        when(fields.field("when"), &rule.when);
        if let Some(version) = &rule.version {
            string(fields.field("version"), version);
        }
        if let Some(rule_weights) = &rule.weights {
            weights(fields.field("weights"), rule_weights);
        }
        if let Some(pins) = &rule.features {
            object(fields.field("features"), |fields| {
                for (name, on) in pins {
                    boolean(fields.field(name), *on);
                }
            });
        }
    });
}

fn when(out: &mut Vec<u8>, when: &WhenSpec) {
    object(out, |fields| {
        if let Some(header) = &when.header {
            match_spec(fields.field("header"), header);
        }
        if let Some(cookie) = &when.cookie {
            match_spec(fields.field("cookie"), cookie);
        }
        if let Some(regions) = &when.region {
            array(fields.field("region"), regions, |out, region| {
                string(out, region)
            });
        }
    });
}

fn match_spec(out: &mut Vec<u8>, spec: &MatchSpec) {
    object(out, |fields| {
        string(fields.field("name"), &spec.name);
        if let Some(equals) = &spec.equals {
            string(fields.field("equals"), equals);
        }
        if let Some(prefix) = &spec.prefix {
            string(fields.field("prefix"), prefix);
        }
        if let Some(present) = spec.present {
            boolean(fields.field("present"), present);
        }
    });
}

fn weights(out: &mut Vec<u8>, weights: &BTreeMap<String, f64>) {
    object(out, |fields| {
        for (name, percent) in weights {
            number(fields.field(name), *percent);
        }
    });
}

/// The fields of an object being written: each call to [`Fields::field`] writes the comma
/// before all but the first, the key and the colon.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Fields<'_> {
    fn field(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(b':');
        self.out
    }
}

fn object(out: &mut Vec<u8>, write_fields: impl FnOnce(&mut Fields)) {
    out.push(b'{');
    write_fields(&mut Fields { out, first: true });
    out.push(b'}');
}

fn array<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, value);
    }
    out.push(b']');
}

fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// serde_json's writer is the reference: the canonical form was defined as its output.
    fn reference(config: &CanaryConfig) -> String {
        serde_json::to_string(config).unwrap()
    }

    #[test]
    fn every_field_as_serde_json_writes_it() {
        let text = r#"{
          "service": "checkout",
          "hosts": ["checkout.shop.svc.cluster.local", "checkout.example.com"],
          "versions": [{"name": "stable", "cluster": "app\u0001v1\"\\\b\f\n\r\t/é"},
                       {"name": "canary", "cluster": "app-v2"}, {"name": "v3", "cluster": "c"}],
          "default": "stable",
          "weights": {"canary": 10, "v3": 0.01},
          "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "uid"}], "seed": 4294967295,
                     "when_missing": "default"},
          "region": {"header": "x-region"},
          "rules": [
            {"name": "a", "when": {"header": {"name": "x-a", "equals": "1"},
              "cookie": {"name": "c", "prefix": "p"}, "region": ["eu", "us"]}, "version": "v3"},
            {"name": "b", "when": {"cookie": {"name": "c", "present": true}},
              "weights": {"canary": 33.33, "v3": 1e-7}},
            {"name": "c", "when": {"header": {"name": "x-c", "present": false}}, "weights": {}}
          ],
          "route_header": "",
          "version_header": "x-v",
          "response_version_header": true,
          "metrics": {"latency": false}
        }"#;
        let config = CanaryConfig::from_json(text.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(canonical_form(&config)).unwrap(),
            reference(&config)
        );
        // The features (their percents, the header, the rules' pins) and the mirror section.
        let features = r#"{
          "versions": [{"name": "stable", "cluster": "app-v1"}, {"name": "canary", "cluster": "app-v2"}],
          "default": "stable",
          "weights": {"canary": 5},
          "sticky": {"keys": [{"header": "x-user-id"}]},
          "rules": [
            {"name": "staff", "when": {"header": {"name": "x-staff", "present": true}},
             "features": {"new-checkout": true, "dark\"mode": false}},
            {"name": "testers", "when": {"cookie": {"name": "t", "equals": "1"}},
             "version": "canary", "features": {"new-checkout": false}}
          ],
          "features": {"new-checkout": {"percent": 12.5}, "dark\"mode": {"percent": 0},
                       "all": {"percent": 100}},
          "features_header": "x-flags",
          "mirror": {"version": "canary", "percent": 33.33, "sampling": "random", "seed": 7,
                     "header": "x-dark", "methods": ["GET", "POST"], "exclude_paths": ["/admin"]}
        }"#;
        let config = CanaryConfig::from_json(features.as_bytes());
        let config = config.unwrap();
        assert_eq!(
            String::from_utf8(canonical_form(&config)).unwrap(),
            reference(&config)
        );
        // A mirror with its defaults written out (header, methods), as serde_json writes them.
        let defaults = r#"{"versions": [{"name": "s", "cluster": "a"}, {"name": "d", "cluster": "b"}],
          "default": "s", "mirror": {"version": "d", "percent": 1}}"#;
        let config = CanaryConfig::from_json(defaults.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(canonical_form(&config)).unwrap(),
            reference(&config)
        );
        let minimal = r#"{"versions": [{"name": "s", "cluster": "a"}], "default": "s"}"#;
        let config = CanaryConfig::from_json(minimal.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(canonical_form(&config)).unwrap(),
            reference(&config)
        );
    }
}
