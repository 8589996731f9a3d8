//! The host-call probe of `make bench-host-calls`: the wasm floor (it writes the route header,
//! `app-v1`) plus, per request, the host calls its plugin configuration lists, for example
//! `get_present=10`. Run side by side with the floor, the difference in CPU per request is the
//! price of those calls in Envoy's V8; BENCHMARKS.md has the table.
//!
//! Calls (each `name=N` makes it N times per request):
//! - `get_present`: read `x-user-id` (present in every benchmark request);
//! - `get_missing`: read a header the request does not have;
//! - `pairs`: read the whole request header map (the raw call the filter makes);
//! - `set`: write a request header; `time`: read the clock; `inc`: increment a counter;
//! - on the response: `status` (read `:status`), `hist` (record a histogram sample),
//!   `resp_set` (write a response header), `prop_code` (read the property `response.code`);
//! - at the end of the stream (`on_log`): `log_code` (`response.code`), `log_duration`
//!   (`request.duration`), `log_absent` (a property Envoy does not have, for the test).
//!
//! A property read that returns nothing adds one to the counter `probe_missing` (a host call
//! only then): such a read is cheaper than one that returns data, so a price measured with
//! misses would be wrong. With `count=1` every property read that returns a value adds one to
//! `probe_found` too (a host call each: for the end-to-end test of the properties,
//! `tests/tests/host_properties.rs`, not for pricing).

#[cfg(target_os = "wasi")]
mod probe {
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot::default()) });
    }}

    /// How many of each call to make per request.
    #[derive(Default)]
    struct Calls {
        get_present: u32,
        get_missing: u32,
        pairs: u32,
        set: u32,
        time: u32,
        inc: u32,
        status: u32,
        hist: u32,
        resp_set: u32,
        prop_code: u32,
        log_code: u32,
        log_duration: u32,
        log_absent: u32,
        counter: u32,
        histogram: u32,
        missing: u32,
        found: Option<u32>,
    }

    #[derive(Default)]
    struct ProbeRoot {
        calls: Rc<Calls>,
    }

    impl Context for ProbeRoot {}

    impl RootContext for ProbeRoot {
        fn on_configure(&mut self, _size: usize) -> bool {
            let text = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
            let mut calls = Calls::default();
            for item in String::from_utf8_lossy(&text).split_whitespace() {
                let Some((name, count)) = item.split_once('=') else {
                    return false;
                };
                let Ok(count) = count.parse() else {
                    return false;
                };
                let slot = match name {
                    "get_present" => &mut calls.get_present,
                    "get_missing" => &mut calls.get_missing,
                    "pairs" => &mut calls.pairs,
                    "set" => &mut calls.set,
                    "time" => &mut calls.time,
                    "inc" => &mut calls.inc,
                    "status" => &mut calls.status,
                    "hist" => &mut calls.hist,
                    "resp_set" => &mut calls.resp_set,
                    "prop_code" => &mut calls.prop_code,
                    "log_code" => &mut calls.log_code,
                    "log_duration" => &mut calls.log_duration,
                    "log_absent" => &mut calls.log_absent,
                    "count" => {
                        if count > 0 {
                            calls.found =
                                hostcalls::define_metric(MetricType::Counter, "probe_found").ok();
                        }
                        continue;
                    }
                    _ => return false,
                };
                *slot = count;
            }
            calls.counter =
                hostcalls::define_metric(MetricType::Counter, "probe_counter").unwrap_or_default();
            calls.histogram = hostcalls::define_metric(MetricType::Histogram, "probe_histogram")
                .unwrap_or_default();
            calls.missing =
                hostcalls::define_metric(MetricType::Counter, "probe_missing").unwrap_or_default();
            self.calls = Rc::new(calls);
            true
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(ProbeStream {
                calls: Rc::clone(&self.calls),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct ProbeStream {
        calls: Rc<Calls>,
    }

    impl Context for ProbeStream {}

    impl HttpContext for ProbeStream {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let calls = &self.calls;
            let request = MapType::HttpRequestHeaders;
            for _ in 0..calls.get_present {
                let _ = hostcalls::get_map_value_bytes(request, "x-user-id");
            }
            for _ in 0..calls.get_missing {
                let _ = hostcalls::get_map_value_bytes(request, "x-not-sent");
            }
            for _ in 0..calls.pairs {
                let _ = header_map_pairs(request);
            }
            for _ in 0..calls.set {
                let _ = hostcalls::set_map_value(request, "x-canary-version", Some("stable"));
            }
            for _ in 0..calls.time {
                let _ = hostcalls::get_current_time();
            }
            for _ in 0..calls.inc {
                let _ = hostcalls::increment_metric(calls.counter, 1);
            }
            let _ = hostcalls::set_map_value(request, "x-canary-cluster", Some("app-v1"));
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let calls = &self.calls;
            for _ in 0..calls.status {
                let _ = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, ":status");
            }
            for _ in 0..calls.hist {
                let _ = hostcalls::record_metric(calls.histogram, 1);
            }
            for _ in 0..calls.resp_set {
                let _ = hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    "x-canary-version",
                    Some("stable"),
                );
            }
            for _ in 0..calls.prop_code {
                read_property(calls, &["response", "code"]);
            }
            Action::Continue
        }

        fn on_log(&mut self) {
            let calls = &self.calls;
            for _ in 0..calls.log_code {
                read_property(calls, &["response", "code"]);
            }
            for _ in 0..calls.log_duration {
                read_property(calls, &["request", "duration"]);
            }
            for _ in 0..calls.log_absent {
                read_property(calls, &["request", "canary_probe_absent"]);
            }
        }
    }

    /// One property read; a read that returns nothing is counted in `probe_missing`, one that
    /// returns a value in `probe_found` if asked (`count=1`).
    fn read_property(calls: &Calls, path: &[&str]) {
        match hostcalls::get_property(path.to_vec()) {
            Ok(Some(value)) if !value.is_empty() => {
                if let Some(found) = calls.found {
                    let _ = hostcalls::increment_metric(found, 1);
                }
            }
            _ => {
                let _ = hostcalls::increment_metric(calls.missing, 1);
            }
        }
    }

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
    }

    /// The same raw call as the filter's glue (`filter/src/glue.rs`), repeated here because the
    /// probe cannot link the filter crate: both register a root context through
    /// `proxy_wasm::main!`, and the probe must price the call, not the filter.
    fn header_map_pairs(map: MapType) -> Vec<u8> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: as in the filter's glue: a non-null buffer was allocated for exactly `size`
        // bytes by the SDK's `proxy_on_memory_allocate` and is ours to free.
        unsafe {
            if proxy_get_header_map_pairs(map, &mut data, &mut size) == 0 && !data.is_null() {
                Vec::from_raw_parts(data, size, size)
            } else {
                Vec::new()
            }
        }
    }
}
