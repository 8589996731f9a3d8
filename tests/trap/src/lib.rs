//! The failing filter of the fail-safe tests: it loads and accepts any configuration, like the
//! canary filter, and then traps (a wasm `unreachable`) on every request before it writes any
//! header. Envoy then applies the ECDS resource's `failure_policy`; whatever it does, a client's
//! route header must not pick the cluster (tests/tests/failsafe.rs).

#[cfg(target_os = "wasi")]
mod trap {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType};

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TrapRoot) });
    }}

    struct TrapRoot;

    impl Context for TrapRoot {}

    impl RootContext for TrapRoot {
        fn on_configure(&mut self, _size: usize) -> bool {
            true
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(TrapStream))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct TrapStream;

    impl Context for TrapStream {}

    impl HttpContext for TrapStream {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            // The trap itself, not a panic: the module is built with panic = "abort", but an
            // explicit `unreachable` does not depend on how the SDK reports a panic.
            core::arch::wasm32::unreachable()
        }
    }
}
