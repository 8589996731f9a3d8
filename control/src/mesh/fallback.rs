//! The fallback follows the default. When the filter fails (its module traps or does not
//! load, with `failure_policy: FAIL_OPEN`), Envoy skips it and the request takes the route
//! that matches without the filter's route header: the fallback route. The shipped front
//! reads its routes by file-based RDS from `canary-routes.yaml` beside the ECDS file, and
//! canaryctl keeps the route named [`FALLBACK_ROUTE`] there sending to the default version's
//! cluster: after every write of the ECDS file (a new default, an undo of one), under the same
//! lock, by the same atomic rename in the watched directory, confirmed by Envoy's RDS counters
//! when admin endpoints are known. A failed filter then never sends traffic to a version that
//! is no longer the default, or has been retired.
//!
//! Without a routes file (an Envoy whose routes live elsewhere), canaryctl cannot move the
//! fallback: a change of the default says so, naming the cluster the fallback must now name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use canary_filter::CanaryConfig;
use serde_json::Value;

use crate::mesh::ecds::{document_as, Format};
use crate::mesh::push::{Fleet, Pusher};
use crate::metrics::admin::Admin;

/// The routes file's name, beside the ECDS file (`.json` is read as JSON, as Envoy does).
pub const ROUTES_FILE: &str = "canary-routes.yaml";

/// The name of the route canaryctl keeps on the default version's cluster.
pub const FALLBACK_ROUTE: &str = "canary-fallback";

/// How long Envoy has to count a routes write as accepted or rejected.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The routes file beside the ECDS file at `ecds`, if there is one: `canary-routes.yaml`, or
/// `canary-routes.json`.
pub fn routes_file(ecds: &Path) -> Option<PathBuf> {
    let dir = ecds
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    [ROUTES_FILE, "canary-routes.json"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// The clusters the fallback routes in `doc` (an RDS `DiscoveryResponse`) send to, one per
/// fallback route; an error when there is none.
pub fn fallback_clusters(doc: &Value) -> Result<Vec<String>> {
    let clusters: Vec<String> = fallback_routes(doc)
        .map(|route| route["route"]["cluster"].as_str().unwrap_or("").to_string())
        .collect();
    if clusters.is_empty() {
        bail!(
            "no route named {FALLBACK_ROUTE:?} (the route taken when the filter does not run) in \
             any resources[].virtual_hosts[].routes[]"
        );
    }
    Ok(clusters)
}

fn fallback_routes(doc: &Value) -> impl Iterator<Item = &Value> {
    doc["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|resource| resource["virtual_hosts"].as_array().into_iter().flatten())
        .flat_map(|host| host["routes"].as_array().into_iter().flatten())
        .filter(|route| route["name"] == FALLBACK_ROUTE)
}

/// `doc` with every fallback route sending to `cluster` (pure).
pub fn with_fallback(doc: &Value, cluster: &str) -> Value {
    let mut doc = doc.clone();
    if let Some(resources) = doc["resources"].as_array_mut() {
        for resource in resources {
            let Some(hosts) = resource["virtual_hosts"].as_array_mut() else {
                continue;
            };
            for host in hosts {
                let Some(routes) = host["routes"].as_array_mut() else {
                    continue;
                };
                for route in routes.iter_mut().filter(|r| r["name"] == FALLBACK_ROUTE) {
                    route["route"] = serde_json::json!({ "cluster": cluster });
                }
            }
        }
    }
    doc
}

/// The default version's cluster in `config`.
fn default_cluster(config: &CanaryConfig) -> Result<&str> {
    config
        .versions
        .iter()
        .find(|v| v.name == config.default)
        .map(|v| v.cluster.as_str())
        .ok_or_else(|| anyhow!("the default version {:?} has no cluster", config.default))
}

/// Makes the fallback route follow `config`'s default, under the ECDS file's lock (taken
/// here), and says what it did: a line, empty when nothing was to be done. With `dry_run`,
/// says what it would do.
pub fn follow(
    pusher: &Pusher,
    before: &CanaryConfig,
    config: &CanaryConfig,
    dry_run: bool,
) -> Result<String> {
    let cluster = default_cluster(config)?;
    let Some(path) = routes_file(pusher.file.path()) else {
        if before.default == config.default {
            return Ok(String::new());
        }
        return Ok(format!(
            "note: no {ROUTES_FILE} beside {}: canaryctl cannot move Envoy's fallback route (the \
             route taken when the filter fails); make it send to {cluster} (`{}`, the default \
             now)\n",
            pusher.file.path().display(),
            config.default
        ));
    };
    let format = Format::of(&path)?;
    let read = |path: &Path| -> Result<(Vec<u8>, Value)> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let doc = document_as(&bytes, format).with_context(|| format!("{}", path.display()))?;
        Ok((bytes, doc))
    };
    let (_, doc) = read(&path)?;
    let old = fallback_clusters(&doc).with_context(|| format!("{}", path.display()))?;
    if old.iter().all(|c| c == cluster) {
        return Ok(String::new());
    }
    let said = format!(
        "fallback route {FALLBACK_ROUTE:?} in {}: {} → {cluster} (`{}`, the default)",
        path.display(),
        old.join(", "),
        config.default
    );
    if dry_run {
        return Ok(format!("dry run: {said} not written\n"));
    }
    pusher.file.check_writable()?;
    let locked = pusher.file.lock()?;
    // Read again under the lock: the write replaces what is there now.
    let (bytes, doc) = read(&path)?;
    let next = with_fallback(&doc, cluster);
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&next)? + "\n",
        Format::Yaml => format!(
            "# Envoy's routes (RDS), beside the ECDS file: canaryctl keeps the route {FALLBACK_ROUTE:?}\n\
             # on the default version's cluster (the route taken when the filter fails).\n{}",
            serde_yaml_ng::to_string(&next)?
        ),
    };
    let admins = admins(pusher);
    let baselines: Vec<(Admin, Counters)> = admins
        .into_iter()
        .filter_map(|admin| rds_counters(&admin).ok().map(|c| (admin, c)))
        .collect();
    replace(&path, text.as_bytes())?;
    let mut out = format!("{said}\n");
    for (admin, before) in baselines {
        match confirm(&admin, &before) {
            Ok(after) => {
                out += &format!(
                    "Envoy at {} accepted the routes ({} ms)\n",
                    admin.base(),
                    after.as_millis()
                )
            }
            Err(err) => {
                // Put back, as a refused ECDS write is.
                replace(&path, &bytes)?;
                drop(locked);
                return Err(err.context(format!(
                    "{} was written and put back: the fallback route still sends to {}",
                    path.display(),
                    old.join(", ")
                )));
            }
        }
    }
    drop(locked);
    Ok(out)
}

/// The Envoys that read the routes: the confirming one and the fleet's admin endpoints.
fn admins(pusher: &Pusher) -> Vec<Admin> {
    let mut admins: Vec<Admin> = pusher.admin.iter().cloned().collect();
    if let Fleet::Admins(fleet) = &pusher.fleet {
        for admin in fleet {
            if !admins.iter().any(|a| a.base() == admin.base()) {
                admins.push(admin.clone());
            }
        }
    }
    admins
}

/// Envoy's RDS counters (`http.<stat_prefix>.rds.<route_config>.update_*`, summed over the
/// route configurations it reads by RDS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    success: u64,
    rejected: u64,
    failure: u64,
}

fn rds_counters(admin: &Admin) -> Result<Counters> {
    let text = admin.get("/stats?filter=%5C.rds%5C..*%5C.update_")?;
    let mut counters = Counters {
        success: 0,
        rejected: 0,
        failure: 0,
    };
    let mut found = false;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        if name.ends_with(".update_success") {
            counters.success += value;
            found = true;
        } else if name.ends_with(".update_rejected") {
            counters.rejected += value;
        } else if name.ends_with(".update_failure") {
            counters.failure += value;
        }
    }
    if !found {
        bail!("Envoy at {} reads no routes by RDS", admin.base());
    }
    Ok(counters)
}

/// Waits for Envoy at `admin` to count the routes write as accepted; a rejection or a failure
/// is an error.
fn confirm(admin: &Admin, before: &Counters) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < CONFIRM_TIMEOUT {
        let now = rds_counters(admin)?;
        if now.success > before.success {
            return Ok(started.elapsed());
        }
        if now.rejected > before.rejected || now.failure > before.failure {
            bail!(
                "Envoy at {} rejected the routes (see its log)",
                admin.base()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "Envoy at {} did not pick up the routes within 5 s",
        admin.base()
    )
}

/// Replaces `path` with `bytes` by rename in its directory (the one Envoy watches), keeping
/// its mode.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = fs::metadata(path)?.permissions();
    let mut staged = tempfile::Builder::new()
        .prefix(".canaryctl-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    staged.write_all(bytes)?;
    staged.as_file().set_permissions(mode)?;
    staged.as_file().sync_all()?;
    staged
        .persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_route_is_found_by_name_and_moved_alone() {
        let doc: Value = serde_yaml_ng::from_str(
            r#"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: canary
  virtual_hosts:
  - name: app
    domains: ["*"]
    routes:
    - match: { prefix: /, headers: [{ name: x-canary-cluster, present_match: true }] }
      route: { cluster_header: x-canary-cluster }
    - name: canary-fallback
      match: { prefix: / }
      route: { cluster: app-v1 }
"#,
        )
        .unwrap();
        assert_eq!(fallback_clusters(&doc).unwrap(), ["app-v1"]);
        let moved = with_fallback(&doc, "app-v2");
        assert_eq!(fallback_clusters(&moved).unwrap(), ["app-v2"]);
        let routes = &moved["resources"][0]["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0],
            doc["resources"][0]["virtual_hosts"][0]["routes"][0]
        );
        let none = serde_json::json!({"resources": []});
        assert!(fallback_clusters(&none).is_err());
    }
}
