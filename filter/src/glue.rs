//! The proxy-wasm glue: thin on purpose. The root context compiles the plugin configuration
//! once per `on_configure` and defines every metric then; each HTTP context only fetches the
//! headers the plan names, asks [`RoutingPlan::decide`], writes two headers and bumps
//! pre-defined metric ids.
//!
//! Host calls go through `proxy_wasm::hostcalls` (which return `Result`) rather than the
//! trait helpers (which unwrap, and whose string getters panic on non-UTF-8 header bytes in
//! proxy-wasm 0.2.5): a request must never crash the VM.
//!
//! Built with proxy-wasm 0.2.5, which exports `proxy_abi_version_0_2_1`: for that ABI Envoy
//! clears the route cache itself when a filter changes request headers, so the router sees the
//! route header written here (the end-to-end tests prove it).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

use crate::decision::RequestView;
use crate::metrics::{self, CODE_CLASSES};
use crate::plan::{HeaderSlot, RoutingPlan};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CanaryRoot::default()) });
}}

/// Metric ids of one outcome (a `(version, rule)` pair).
struct OutcomeMetrics {
    requests: u32,
    responses: [u32; CODE_CLASSES.len()],
    duration: u32,
}

/// What every HTTP context of one configuration shares.
struct Active {
    plan: RoutingPlan,
    metrics: Vec<OutcomeMetrics>,
    proxy_region: Option<Vec<u8>>,
}

#[derive(Default)]
struct CanaryRoot {
    active: Option<Rc<Active>>,
    random: Rc<Cell<u64>>,
}

impl Context for CanaryRoot {}

impl RootContext for CanaryRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(bytes)) => bytes,
            _ => Vec::new(),
        };
        let plan = match RoutingPlan::from_json(&bytes) {
            Ok(plan) => plan,
            Err(err) => {
                // One line naming the field; returning false makes Envoy refuse this config
                // (and keep the previous one when it came by ECDS).
                error!("configuration refused: {err}");
                return false;
            }
        };
        let metrics = match define_metrics(&plan) {
            Ok(metrics) => metrics,
            Err(name) => {
                error!("configuration refused: could not define metric {name}");
                return false;
            }
        };
        // The proxy's locality does not change while it runs: read it once, not per request.
        let proxy_region = hostcalls::get_property(vec!["xds", "node", "locality", "region"])
            .ok()
            .flatten()
            .filter(|region| !region.is_empty());
        if self.random.get() == 0 {
            let now = hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH);
            let nanos = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            // Any non-zero start will do; the low bits of the clock differ between workers.
            self.random.set((nanos as u64) | 1);
        }
        info!(
            "configuration accepted: {} versions, {} rules, default `{}`, proxy region `{}`",
            plan.versions().len(),
            plan.rule_names().count(),
            plan.versions()
                .get(plan.default_version())
                .map_or("", |v| v.name.as_str()),
            proxy_region
                .as_deref()
                .map_or("(none)".into(), String::from_utf8_lossy),
        );
        self.active = Some(Rc::new(Active {
            plan,
            metrics,
            proxy_region,
        }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CanaryStream {
            active: self.active.clone(),
            random: Rc::clone(&self.random),
            chosen: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn define_metrics(plan: &RoutingPlan) -> Result<Vec<OutcomeMetrics>, String> {
    let define =
        |kind: MetricType, name: String| hostcalls::define_metric(kind, &name).map_err(|_| name);
    plan.outcomes()
        .iter()
        .map(|outcome| {
            let version = plan
                .versions()
                .get(outcome.version)
                .map_or("", |v| v.name.as_str());
            let rule = outcome.label.as_str();
            let mut responses = [0; CODE_CLASSES.len()];
            for (id, class) in responses.iter_mut().zip(CODE_CLASSES) {
                *id = define(
                    MetricType::Counter,
                    metrics::responses_name(version, rule, class),
                )?;
            }
            Ok(OutcomeMetrics {
                requests: define(MetricType::Counter, metrics::requests_name(version, rule))?,
                responses,
                duration: define(MetricType::Histogram, metrics::duration_name(version, rule))?,
            })
        })
        .collect()
}

/// One HTTP request.
struct CanaryStream {
    active: Option<Rc<Active>>,
    random: Rc<Cell<u64>>,
    /// `(outcome, version, start)` once the request has been routed.
    chosen: Option<(usize, usize, SystemTime)>,
}

impl Context for CanaryStream {}

impl HttpContext for CanaryStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(active) = self.active.as_ref() else {
            // Never configured: the route header was stripped natively before this filter,
            // so Envoy's fallback route sends the request to the default version.
            return Action::Continue;
        };
        let plan = &active.plan;
        let mut request = HostRequest {
            fetched: vec![None; plan.header_names().len()],
            names: plan.header_names(),
            proxy_region: active.proxy_region.as_deref(),
            random: &self.random,
        };
        let decision = plan.decide(&mut request);
        let Some(version) = plan.versions().get(decision.version) else {
            return Action::Continue;
        };
        // Replaces any client-sent value: a client never picks the cluster.
        set_header(
            MapType::HttpRequestHeaders,
            plan.route_header(),
            &version.cluster,
        );
        if let Some(name) = plan.version_header() {
            set_header(MapType::HttpRequestHeaders, name, &version.name);
        }
        if let Some(ids) = active.metrics.get(decision.outcome) {
            let _ = hostcalls::increment_metric(ids.requests, 1);
        }
        let start = hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH);
        self.chosen = Some((decision.outcome, decision.version, start));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(active), Some((outcome, version, start))) = (self.active.as_ref(), self.chosen)
        else {
            return Action::Continue;
        };
        if let Some(ids) = active.metrics.get(outcome) {
            let status = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status")
                .ok()
                .flatten();
            let class = status.as_deref().and_then(metrics::code_class_index);
            if let Some(id) = class.and_then(|class| ids.responses.get(class)) {
                let _ = hostcalls::increment_metric(*id, 1);
            }
            let now = hostcalls::get_current_time().unwrap_or(start);
            let elapsed = now.duration_since(start).unwrap_or(Duration::ZERO);
            let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let _ = hostcalls::record_metric(ids.duration, millis);
        }
        if let (Some(name), Some(version)) = (
            active.plan.version_header(),
            active.plan.versions().get(version),
        ) {
            set_header(MapType::HttpResponseHeaders, name, &version.name);
        }
        Action::Continue
    }
}

fn set_header(map: MapType, name: &str, value: &str) {
    if hostcalls::set_map_value(map, name, Some(value)).is_err() {
        warn!("could not set header {name}");
    }
}

/// Above this many header names in the plan, the request's headers are fetched in one call.
const FETCH_ALL_ABOVE: usize = 8;

/// The request as the decision sees it: each header fetched from the host on first use (or
/// all at once, for plans that name many headers).
struct HostRequest<'a> {
    fetched: Vec<Option<Option<Vec<u8>>>>,
    names: &'a [String],
    proxy_region: Option<&'a [u8]>,
    random: &'a Cell<u64>,
}

impl RequestView for HostRequest<'_> {
    fn header(&mut self, slot: HeaderSlot) -> Option<&[u8]> {
        if self.names.len() > FETCH_ALL_ABOVE && self.fetched.iter().all(Option::is_none) {
            // Many rules name many headers: one host call for the whole map costs less than
            // one call per name (each call crosses the VM boundary).
            let all = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
            for (cell, name) in self.fetched.iter_mut().zip(self.names) {
                *cell = Some(
                    all.iter()
                        .find(|(have, _)| have == name)
                        .map(|(_, value)| value.clone()),
                );
            }
        }
        let cell = self.fetched.get_mut(slot)?;
        if cell.is_none() {
            let name = self.names.get(slot)?;
            let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
                .ok()
                .flatten();
            *cell = Some(value);
        }
        cell.as_ref()?.as_deref()
    }

    fn proxy_region(&self) -> Option<&[u8]> {
        self.proxy_region
    }

    fn random(&mut self) -> u32 {
        // splitmix64: a few arithmetic steps per keyless request. The buckets need spread, not
        // secrecy, and pulling in a random-number crate would add to every module's size.
        let state = self.random.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.random.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}
