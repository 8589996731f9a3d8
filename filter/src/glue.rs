//! The proxy-wasm glue: thin on purpose. The root context compiles the plugin configuration
//! once per `on_configure` and defines the metrics it asks for then; each HTTP context reads
//! `:authority` first when the configuration lists `hosts` (and leaves a request for another
//! host alone), fetches the request headers (one host call, only if the plan reads any), asks
//! [`RoutingPlan::decide`], writes the routing headers the configuration names, bumps counters
//! in its own memory and, on the response, does only the work the configuration asks for
//! (`:status` for response classes, the clock and a histogram sample for latency, the response
//! version header).
//!
//! Host calls are what a request costs in Envoy's V8 (about a microsecond each, measured in
//! BENCHMARKS.md), so the glue makes as few as the contract allows: one call for the whole
//! header map instead of one per header name (or, when the plan reads a single header name,
//! one call for that header, which returns less), and counter increments summed in the module
//! and handed to Envoy on a timer ([`FLUSH_PERIOD`]) instead of one call per increment.
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

use crate::header_pairs::{single_pair, HeaderMapRequest};
use crate::metrics::{self, CODE_CLASSES};
use crate::mirror::MirrorAction;
use crate::plan::{MetricSeries, RoutingPlan, LABEL_DEFAULT, LABEL_WEIGHTS};
use crate::CanaryConfig;

/// How often counter increments summed in the module are handed to Envoy. Envoy's own stats
/// flush (1 s in the shipped bootstrap, 5 s by default) and Prometheus scrapes are slower, so
/// what they see lags by at most this much more.
pub const FLUSH_PERIOD: Duration = Duration::from_millis(100);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CanaryRoot::default()) });
}}

/// An Envoy counter and the increments not yet handed to it. Its id is `None` until it is
/// defined: a rule's series is defined at its first use (see [`define_metrics`]).
struct Counter {
    id: Cell<Option<u32>>,
    pending: Cell<u64>,
}

impl Counter {
    fn new(id: Option<u32>) -> Self {
        Counter {
            id: Cell::new(id),
            pending: Cell::new(0),
        }
    }

    /// Per request: memory only, no host call.
    fn bump(&self) {
        self.pending.set(self.pending.get().saturating_add(1));
    }

    /// Hands the increments over, if the counter is defined.
    fn flush(&self) {
        let (Some(id), pending) = (self.id.get(), self.pending.get()) else {
            return;
        };
        if pending > 0 {
            self.pending.set(0);
            let offset = i64::try_from(pending).unwrap_or(i64::MAX);
            let _ = hostcalls::increment_metric(id, offset);
        }
    }
}

/// The id in `id`, or, if there is none yet, that of the metric `name()` of `kind`, defined
/// now (once: the id is kept). `None` if the host refused it, which is logged.
fn metric_id(
    id: &Cell<Option<u32>>,
    kind: MetricType,
    name: impl FnOnce() -> String,
) -> Option<u32> {
    if let Some(id) = id.get() {
        return Some(id);
    }
    let name = name();
    match hostcalls::define_metric(kind, &name) {
        Ok(defined) => {
            id.set(Some(defined));
            Some(defined)
        }
        Err(_) => {
            warn!("could not define metric {name}");
            None
        }
    }
}

/// The metrics of one series (a `(version, rule)` pair); `None` where the configuration
/// turned one off (`metrics` in the configuration): it is then neither defined nor paid for.
struct SeriesMetrics {
    requests: Option<Counter>,
    responses: Option<[Counter; CODE_CLASSES.len()]>,
    /// Histogram id (`None` inside until defined): samples have no batched form in the ABI,
    /// so each is recorded at once.
    duration: Option<Cell<Option<u32>>>,
}

/// One metric of a series, to name it when it is defined.
#[derive(Clone, Copy)]
enum MetricKind {
    Requests,
    Responses(&'static str),
    Duration,
}

impl SeriesMetrics {
    /// Defines every metric of the series not defined yet (`name` names them): a series
    /// shows whole, every response class at zero, from its first use on. False if the host
    /// refused one (logged; tried again at the next use).
    fn define(&self, name: &dyn Fn(MetricKind) -> String) -> bool {
        let mut defined = true;
        if let Some(requests) = &self.requests {
            defined &= metric_id(&requests.id, MetricType::Counter, || {
                name(MetricKind::Requests)
            })
            .is_some();
        }
        if let Some(responses) = &self.responses {
            for (counter, class) in responses.iter().zip(CODE_CLASSES) {
                let id = metric_id(&counter.id, MetricType::Counter, || {
                    name(MetricKind::Responses(class))
                });
                defined &= id.is_some();
            }
        }
        if let Some(duration) = &self.duration {
            defined &= metric_id(duration, MetricType::Histogram, || {
                name(MetricKind::Duration)
            })
            .is_some();
        }
        defined
    }

    /// Hands over the series' counters, defining the series first if it has something to
    /// hand over and is not defined yet (`name` names its metrics then).
    fn flush(&self, name: &dyn Fn(MetricKind) -> String) {
        let counters = self.requests.iter().chain(self.responses.iter().flatten());
        let pending = counters.clone().any(|counter| counter.pending.get() > 0);
        if !pending || !self.define(name) {
            return;
        }
        counters.for_each(Counter::flush);
    }
}

/// What every HTTP context of one configuration shares.
struct ActiveConfig {
    plan: RoutingPlan,
    metrics: Vec<SeriesMetrics>,
    proxy_region: Option<Vec<u8>>,
    /// The plan's header name when it reads exactly one (a sticky key header and no rules, say):
    /// that header is then fetched alone, which costs less than fetching the whole map.
    only_header: Option<String>,
    /// Per feature, its metrics when off then on (index `2 * feature + on`); empty without
    /// features.
    feature_metrics: Vec<SeriesMetrics>,
}

impl ActiveConfig {
    fn flush(&self) {
        for (outcome, metrics) in self.plan.outcomes().iter().zip(&self.metrics) {
            metrics.flush(&|kind| series_metric_name(&self.plan, outcome, kind));
        }
        // Defined at configure, all of them: never named here.
        for metrics in &self.feature_metrics {
            metrics.flush(&|_| String::new());
        }
    }
}

/// The name of metric `kind` of the series of `outcome`.
fn series_metric_name(plan: &RoutingPlan, outcome: &MetricSeries, kind: MetricKind) -> String {
    let service = plan.service();
    let version = plan
        .versions()
        .get(outcome.version)
        .map_or("", |v| v.name.as_str());
    let rule = outcome.label.as_str();
    match kind {
        MetricKind::Requests => metrics::requests_name(service, version, rule),
        MetricKind::Responses(class) => metrics::responses_name(service, version, rule, class),
        MetricKind::Duration => metrics::duration_name(service, version, rule),
    }
}

impl Drop for ActiveConfig {
    /// The last holder of a replaced configuration (its root context, or a request still in
    /// flight when a new configuration arrived) hands over what is left.
    fn drop(&mut self) {
        self.flush();
    }
}

#[derive(Default)]
struct CanaryRoot {
    active: Option<Rc<ActiveConfig>>,
    random: Rc<Cell<u64>>,
}

impl Context for CanaryRoot {
    fn on_done(&mut self) -> bool {
        if let Some(active) = &self.active {
            active.flush();
        }
        true
    }
}

impl RootContext for CanaryRoot {
    fn on_tick(&mut self) {
        if let Some(active) = &self.active {
            active.flush();
        }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(bytes)) => bytes,
            _ => Vec::new(),
        };
        let parsed = CanaryConfig::from_json(&bytes)
            .and_then(|config| RoutingPlan::try_from(&config).map(|plan| (config, plan)));
        let (config, plan) = match parsed {
            Ok(parsed) => parsed,
            Err(err) => {
                // One line naming the field; returning false makes Envoy refuse this config
                // (and keep the previous one when it came by ECDS).
                error!("configuration refused: {err}");
                return false;
            }
        };
        // Of the parsed configuration, not of `bytes`: istiod rewrites a WasmPlugin's
        // `pluginConfig` in its own JSON, which canaryctl cannot predict byte for byte.
        let config_hash = metrics::config_hash(&config);
        let config_hash_name = metrics::config_hash_name(plan.service());
        let metrics = match define_metrics(&plan)
            .and_then(|metrics| Ok((metrics, define_feature_metrics(&plan)?)))
        {
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
            proxy_region.as_deref().map_or("(none)", |region| {
                std::str::from_utf8(region).unwrap_or("(not UTF-8)")
            }),
        );
        // Replacing the previous configuration drops it, and its `Drop` hands over its sums
        // (at once, or when the last request still holding it ends).
        let only_header = match plan.header_names() {
            [name] => Some(name.clone()),
            _ => None,
        };
        let (metrics, feature_metrics) = metrics;
        self.active = Some(Rc::new(ActiveConfig {
            plan,
            metrics,
            feature_metrics,
            proxy_region,
            only_header,
        }));
        // Which configuration this proxy runs, for `canaryctl` to confirm a change fleet-wide.
        let published = match config_hash {
            Ok(config_hash) => hostcalls::define_metric(MetricType::Gauge, &config_hash_name)
                .and_then(|id| hostcalls::record_metric(id, u64::from(config_hash)))
                .is_ok(),
            Err(_) => false,
        };
        if !published {
            warn!("could not publish {config_hash_name}");
        }
        if hostcalls::set_tick_period(FLUSH_PERIOD).is_err() {
            warn!("could not start the counter flush timer");
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CanaryStream {
            active: self.active.clone(),
            random: Rc::clone(&self.random),
            chosen: None,
            features_on: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The metrics of each series, as [`ActiveConfig::metrics`] holds them. Those of the split
/// (the series labelled `weights` and `default`: one or two per version) are defined now, so
/// that every version shows at zero from the start; a rule's series is defined whole when
/// first used (at the first flush with something to hand over, or at its histogram's first
/// sample), every response class at zero from then on. A thousand rules made about 7,000 definitions at configure, most of the time a
/// push took to take effect (BENCHMARKS.md), for series most of which stay at zero.
fn define_metrics(plan: &RoutingPlan) -> Result<Vec<SeriesMetrics>, String> {
    let wanted = plan.metrics();
    plan.outcomes()
        .iter()
        .map(|outcome| {
            let now = outcome.label == LABEL_WEIGHTS || outcome.label == LABEL_DEFAULT;
            let define = |kind: MetricType, metric: MetricKind| -> Result<Option<u32>, String> {
                if !now {
                    return Ok(None);
                }
                let name = series_metric_name(plan, outcome, metric);
                hostcalls::define_metric(kind, &name)
                    .map(Some)
                    .map_err(|_| name)
            };
            let responses = if wanted.responses {
                let mut ids = [None; CODE_CLASSES.len()];
                for (id, class) in ids.iter_mut().zip(CODE_CLASSES) {
                    *id = define(MetricType::Counter, MetricKind::Responses(class))?;
                }
                Some(ids.map(Counter::new))
            } else {
                None
            };
            let requests = if wanted.requests {
                Some(Counter::new(define(
                    MetricType::Counter,
                    MetricKind::Requests,
                )?))
            } else {
                None
            };
            let duration = if wanted.latency {
                Some(Cell::new(define(
                    MetricType::Histogram,
                    MetricKind::Duration,
                )?))
            } else {
                None
            };
            Ok(SeriesMetrics {
                requests,
                responses,
                duration,
            })
        })
        .collect()
}

/// The metrics of each feature, off then on, as [`ActiveConfig::feature_metrics`] holds them.
fn define_feature_metrics(plan: &RoutingPlan) -> Result<Vec<SeriesMetrics>, String> {
    let Some(features) = plan.features() else {
        return Ok(Vec::new());
    };
    let define =
        |kind: MetricType, name: String| hostcalls::define_metric(kind, &name).map_err(|_| name);
    let wanted = plan.metrics();
    let service = plan.service();
    let mut all = Vec::with_capacity(features.list().len() * 2);
    for feature in features.list() {
        for state in crate::features::STATES {
            let name = feature.name.as_str();
            let responses = if wanted.responses {
                let mut ids = [0; CODE_CLASSES.len()];
                for (id, class) in ids.iter_mut().zip(CODE_CLASSES) {
                    *id = define(
                        MetricType::Counter,
                        metrics::feature_responses_name(service, name, state, class),
                    )?;
                }
                Some(ids.map(|id| Counter::new(Some(id))))
            } else {
                None
            };
            let requests = if wanted.requests {
                let metric = metrics::feature_name(metrics::FEATURE_REQUESTS, service, name, state);
                Some(Counter::new(Some(define(MetricType::Counter, metric)?)))
            } else {
                None
            };
            let duration = if wanted.latency {
                let metric = metrics::feature_name(metrics::FEATURE_DURATION, service, name, state);
                Some(Cell::new(Some(define(MetricType::Histogram, metric)?)))
            } else {
                None
            };
            all.push(SeriesMetrics {
                requests,
                responses,
                duration,
            });
        }
    }
    Ok(all)
}

/// One HTTP request.
struct CanaryStream {
    active: Option<Rc<ActiveConfig>>,
    random: Rc<Cell<u64>>,
    /// `(outcome, version, start)` once the request has been routed and its response has
    /// something to do (response classes, latency or the response header); `start` only when
    /// latency is measured.
    chosen: Option<(usize, usize, Option<SystemTime>)>,
    /// The request's features (bit `i` for feature `i` on) when the configuration has
    /// features and its response has metrics to count.
    features_on: Option<u32>,
}

impl Context for CanaryStream {}

impl HttpContext for CanaryStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(active) = self.active.as_ref() else {
            // Never configured (Envoy runs a filter only after `on_configure` accepted its
            // configuration, so this is defence in depth): no client-sent route may survive.
            // The configured names are unknown here; the default ones are removed, and
            // Envoy's fallback route sends the request to the default version.
            remove_header(crate::config::DEFAULT_ROUTE_HEADER);
            remove_header(crate::config::DEFAULT_VERSION_HEADER);
            remove_header(crate::config::DEFAULT_FEATURES_HEADER);
            remove_header(crate::config::DEFAULT_MIRROR_HEADER);
            return Action::Continue;
        };
        let plan = &active.plan;
        // First, and alone: a request for a host the configuration does not route (a sidecar
        // runs the filter on every outbound call) costs this one header read and nothing else.
        if plan.is_scoped() {
            let authority = header_value(MapType::HttpRequestHeaders, ":authority");
            if !plan.routes_authority(authority.as_deref()) {
                return Action::Continue;
            }
        }
        let only_header = active.only_header.as_deref();
        let mut request = HeaderMapRequest::new(
            plan,
            || match only_header {
                Some(name) => one_header_pairs(MapType::HttpRequestHeaders, name),
                None => header_map_pairs(MapType::HttpRequestHeaders),
            },
            active.proxy_region.as_deref(),
            &self.random,
        );
        let decision = plan.decide(&mut request);
        let Some(version) = plan.versions().get(decision.version) else {
            // The decision only names declared versions (the properties check it); should it
            // not, the request takes the fallback route, never the client's.
            plan.route_header().into_iter().for_each(remove_header);
            plan.version_header().into_iter().for_each(remove_header);
            plan.features()
                .map(|f| f.header())
                .into_iter()
                .for_each(remove_header);
            return Action::Continue;
        };
        // Replaces any client-sent value: a client never picks the cluster or the version.
        if let Some(name) = plan.route_header() {
            set_header(MapType::HttpRequestHeaders, name, &version.cluster);
        }
        if let Some(name) = plan.version_header() {
            set_header(MapType::HttpRequestHeaders, name, &version.name);
        }
        let features_on = plan.features().map(|features| {
            let on = plan.decide_features(&mut request, |_, _, _| {});
            // Replaces any client-sent value; none on: the client's copy is removed.
            let value = features.header_value(on);
            if value.is_empty() {
                remove_header(features.header());
            } else {
                set_header(MapType::HttpRequestHeaders, features.header(), &value);
            }
            for index in 0..features.list().len() {
                let series = 2 * index + usize::from(on & (1 << index) != 0);
                let requests = active.feature_metrics.get(series);
                if let Some(requests) = requests.and_then(|m| m.requests.as_ref()) {
                    requests.bump();
                }
            }
            on
        });
        // A dark canary: Envoy's mirror policy copies the request to the cluster written here.
        // Only a configuration with a `mirror` pays for it.
        if let Some(name) = plan.mirror_header() {
            match plan.mirror(&mut request, decision.version) {
                MirrorAction::Copy(target) => {
                    if let Some(target) = plan.versions().get(target) {
                        set_header(MapType::HttpRequestHeaders, name, &target.cluster);
                    }
                }
                // A client never picks a mirror either.
                MirrorAction::Remove => remove_header(name),
                MirrorAction::Nothing => {}
            }
        }
        let metrics = active.metrics.get(decision.outcome);
        if let Some(requests) = metrics.and_then(|m| m.requests.as_ref()) {
            requests.bump();
        }
        // Per request, only what the configuration asks for: the clock only for latency, the
        // response hook's work only for response classes, latency or the response header.
        let latency = metrics.is_some_and(|m| m.duration.is_some());
        let responses = metrics.is_some_and(|m| m.responses.is_some());
        if latency || responses || plan.response_version_header() {
            let start =
                latency.then(|| hostcalls::get_current_time().unwrap_or(SystemTime::UNIX_EPOCH));
            self.chosen = Some((decision.outcome, decision.version, start));
            // The feature metrics are kept when the version metrics are (one `metrics` switch).
            if latency || responses {
                self.features_on = features_on;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(active), Some((outcome, version, start))) = (self.active.as_ref(), self.chosen)
        else {
            return Action::Continue;
        };
        if let Some(metrics) = active.metrics.get(outcome) {
            // Read once, for the version's series and the features' alike.
            let class = metrics.responses.as_ref().and_then(|_| {
                let status =
                    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status")
                        .ok()
                        .flatten();
                status.as_deref().and_then(metrics::code_class_index)
            });
            let millis = match (&metrics.duration, start) {
                (Some(_), Some(start)) => {
                    let now = hostcalls::get_current_time().unwrap_or(start);
                    let elapsed = now.duration_since(start).unwrap_or(Duration::ZERO);
                    Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
                }
                _ => None,
            };
            let features = active.plan.features().map_or(0, |f| f.list().len());
            let feature_series = self.features_on.into_iter().flat_map(|on| {
                (0..features).filter_map(move |index| {
                    let state = usize::from(on & (1 << index) != 0);
                    active.feature_metrics.get(2 * index + state)
                })
            });
            let outcome = active.plan.outcomes().get(outcome);
            for metrics in std::iter::once(metrics).chain(feature_series) {
                let responses = metrics.responses.as_ref();
                if let Some(counter) = class.and_then(|class| responses?.get(class)) {
                    counter.bump();
                }
                if let (Some(duration), Some(millis)) = (&metrics.duration, millis) {
                    // A rule's series is defined at its first sample (a feature's and the
                    // split's were at configure, so `outcome` names only the version's).
                    if duration.get().is_none() {
                        metrics.define(&|kind| {
                            outcome.map_or_else(String::new, |outcome| {
                                series_metric_name(&active.plan, outcome, kind)
                            })
                        });
                    }
                    if let Some(id) = duration.get() {
                        let _ = hostcalls::record_metric(id, millis);
                    }
                }
            }
        }
        if active.plan.response_version_header() {
            if let (Some(name), Some(version)) = (
                active.plan.version_header(),
                active.plan.versions().get(version),
            ) {
                set_header(MapType::HttpResponseHeaders, name, &version.name);
            }
        }
        Action::Continue
    }
}

fn remove_header(name: &str) {
    if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None).is_err() {
        warn!("could not remove header {name}");
    }
}

fn set_header(map: MapType, name: &str, value: &str) {
    if hostcalls::set_map_value(map, name, Some(value)).is_err() {
        warn!("could not set header {name}");
    }
}

// The raw ABI call: the SDK's `get_map_bytes` wraps the same call but copies every header into
// a new `String` and `Vec` of its own, which the decision does not need.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

/// The first value of header `name` in `map`, as a one-pair header map ([`single_pair`]), or
/// an empty buffer (no headers) if the request has none.
fn one_header_pairs(map: MapType, name: &str) -> Vec<u8> {
    match header_value(map, name) {
        Some(value) => single_pair(name.as_bytes(), &value),
        None => Vec::new(),
    }
}

/// The first value of header `name` in `map`, `None` if the host could not give one. The raw
/// ABI call, because the SDK's `get_map_value_bytes` returns `None` for a header that is
/// present with an empty value (the host hands back no buffer then), which a `present`
/// condition must tell from absent.
fn header_value(map: MapType, name: &str) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header_map_pairs`: the host reads `name` from the pointer and size given,
    // and a non-null buffer it returns was allocated for exactly `size` bytes by the SDK's
    // `proxy_on_memory_allocate`, ours to own and free.
    unsafe {
        if proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) != 0 {
            return None;
        }
        if data.is_null() {
            Some(Vec::new())
        } else {
            Some(Vec::from_raw_parts(data, size, size))
        }
    }
}

/// The header map `map` serialized by the host, or an empty buffer if it cannot be read (which
/// the lookup treats as no headers: the request then goes by the contract's fallbacks).
fn header_map_pairs(map: MapType) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a size into the two locals. A non-null pointer was
    // allocated for exactly `size` bytes through the SDK's `proxy_on_memory_allocate` (a boxed
    // `[u8]` of that length, leaked), so the buffer is ours to own and free as a `Vec` of that
    // length and capacity; the SDK's own wrappers take it over the same way.
    unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) == 0 && !data.is_null() {
            Vec::from_raw_parts(data, size, size)
        } else {
            Vec::new()
        }
    }
}
