//! The wasm floor of `make bench`: what any proxy-wasm filter costs in Envoy's V8 before it
//! does any work. It writes one request header (the route header, always `app-v1`) and nothing
//! else: no configuration, no metrics, no response hook.

#[cfg(target_os = "wasi")]
mod floor {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, MapType};

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot) });
    }}

    struct FloorRoot;

    impl Context for FloorRoot {}

    impl RootContext for FloorRoot {
        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(FloorStream))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct FloorStream;

    impl Context for FloorStream {}

    impl HttpContext for FloorStream {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "x-canary-cluster",
                Some("app-v1"),
            );
            Action::Continue
        }
    }
}
