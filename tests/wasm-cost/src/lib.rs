//! The deterministic cost measure of the filter: the built `.wasm` run in wasmi with fuel
//! metering, behind a mock proxy-wasm host (ABI 0.2.1) that plays requests as Envoy would
//! (`proxy_on_context_create`, request headers, response headers, `proxy_on_log`, done,
//! delete) and counts every host call by kind.
//!
//! Fuel is wasmi's count of the work the module does (about one unit per wasm instruction;
//! bulk memory operations are charged per byte as well). It is the same on every run and every
//! machine, so a change's cost shows as a difference in a table, where the µs of `make bench`
//! move by more than the differences being measured (BENCHMARKS.md). What the module asks of
//! the host is counted apart, call by call: in Envoy's V8 those calls are most of a request's
//! cost, and their price per kind was measured in Envoy (`make bench-host-calls`);
//! [`Calibration`] turns both into µs.
//!
//! The mock host does what the filter needs of Envoy and no more: header maps (read whole, read
//! one, write, remove), the plugin configuration buffer, properties, metrics, the clock, the
//! tick period and logging, and the WASI calls the Rust standard library makes. An import it
//! does not know returns zeros and is counted under its own name, so a new kind of call shows.

use std::collections::BTreeMap;

pub mod calibration;
pub mod scenarios;

use wasmi::{
    AsContextMut, Caller, Config, Engine, Error, Extern, ExternType, Func, Instance, Linker,
    Memory, Module, Store, Val,
};

/// Fuel given to each call into the module: far more than any callback needs.
const FUEL: u64 = 1 << 40;

/// The root context's id, as Envoy numbers it (any id works; the module only keeps it).
const ROOT_ID: i32 = 1;

/// Status codes of the proxy-wasm ABI.
const OK: i32 = 0;
const NOT_FOUND: i32 = 1;

/// Map types of the proxy-wasm ABI.
const REQUEST_HEADERS: i32 = 0;
const RESPONSE_HEADERS: i32 = 2;

/// Buffer type of the plugin configuration.
const PLUGIN_CONFIGURATION: i32 = 7;

/// A request as the mock host plays it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Request headers in order (names in lower case, as Envoy hands them over).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response headers (`:status` first).
    pub response_headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// A request with Envoy's pseudo-headers and `:status: 200` on the response.
    pub fn new() -> Self {
        Request {
            headers: vec![
                (":authority".into(), b"app.example".to_vec()),
                (":path".into(), b"/".to_vec()),
                (":method".into(), b"GET".to_vec()),
                (":scheme".into(), b"http".to_vec()),
            ],
            response_headers: vec![(":status".into(), b"200".to_vec())],
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What one callback sequence cost: the module's fuel and the host calls it made, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cost {
    /// wasmi fuel the module burnt.
    pub fuel: u64,
    /// Host calls by import name.
    pub calls: BTreeMap<String, u64>,
}

impl Cost {
    /// Host calls of one kind.
    pub fn calls_of(&self, name: &str) -> u64 {
        self.calls.get(name).copied().unwrap_or(0)
    }

    /// All host calls.
    pub fn host_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    fn divided_by(mut self, count: u64) -> Cost {
        self.fuel /= count;
        for calls in self.calls.values_mut() {
            *calls /= count;
        }
        self
    }
}

/// The mock host's state: what the request in flight carries, what the module wrote, and the
/// calls counted.
#[derive(Default)]
struct Host {
    configuration: Vec<u8>,
    request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    properties: BTreeMap<Vec<u8>, Vec<u8>>,
    metrics: Vec<(String, i64)>,
    calls: BTreeMap<String, u64>,
    log: Vec<String>,
    clock_ns: u64,
}

impl Host {
    fn map(&mut self, map_type: i32) -> Option<&mut Vec<(Vec<u8>, Vec<u8>)>> {
        match map_type {
            REQUEST_HEADERS => Some(&mut self.request_headers),
            RESPONSE_HEADERS => Some(&mut self.response_headers),
            _ => None,
        }
    }
}

/// One module loaded into wasmi with the mock host, configured.
pub struct Vm {
    store: Store<Host>,
    instance: Instance,
    memory: Memory,
    next_context: i32,
    /// What `proxy_on_configure` cost (the configuration's parse and compile, the metrics'
    /// definitions).
    pub configure: Cost,
}

/// Why a module could not be measured.
#[derive(Debug)]
pub struct VmError(pub String);

impl std::fmt::Display for VmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VmError {}

impl From<Error> for VmError {
    fn from(err: Error) -> Self {
        VmError(err.to_string())
    }
}

impl Vm {
    /// Instantiates `wasm`, starts the VM and hands it `configuration` as Envoy does
    /// (`_initialize`, the root context, `proxy_on_vm_start`, `proxy_on_configure`).
    /// `proxy_region` is what `xds.node.locality.region` returns.
    pub fn new(
        wasm: &[u8],
        configuration: &[u8],
        proxy_region: Option<&str>,
    ) -> Result<Vm, VmError> {
        let mut config = Config::default();
        config.consume_fuel(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wasm)?;
        let mut host = Host {
            configuration: configuration.to_vec(),
            clock_ns: 1_700_000_000_000_000_000,
            ..Host::default()
        };
        if let Some(region) = proxy_region {
            host.properties.insert(
                property_path(&["xds", "node", "locality", "region"]),
                region.into(),
            );
        }
        let mut store = Store::new(&engine, host);
        store.set_fuel(FUEL)?;
        let mut linker = Linker::<Host>::new(&engine);
        for import in module.imports() {
            let ExternType::Func(ty) = import.ty() else {
                return Err(VmError(format!("unexpected import {}", import.name())));
            };
            let name = import.name().to_string();
            linker
                .func_new(
                    import.module(),
                    import.name(),
                    ty.clone(),
                    move |caller, params, results| host_call(&name, caller, params, results),
                )
                .map_err(|err| VmError(err.to_string()))?;
        }
        let instance = linker.instantiate_and_start(&mut store, &module)?;
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or_else(|| VmError("the module exports no memory".into()))?;
        let mut vm = Vm {
            store,
            instance,
            memory,
            next_context: ROOT_ID + 1,
            configure: Cost::default(),
        };
        vm.call("_initialize", &[])?;
        vm.call("proxy_on_context_create", &[Val::I32(ROOT_ID), Val::I32(0)])?;
        vm.call("proxy_on_vm_start", &[Val::I32(ROOT_ID), Val::I32(0)])?;
        vm.reset();
        let size = i32::try_from(configuration.len()).unwrap_or(i32::MAX);
        let accepted = vm.call("proxy_on_configure", &[Val::I32(ROOT_ID), Val::I32(size)])?;
        if accepted != Some(1) {
            return Err(VmError(format!(
                "configuration refused: {}",
                vm.store.data().log.join("; ")
            )));
        }
        vm.configure = vm.take_cost();
        Ok(vm)
    }

    /// The module's linear memory, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// What the module logged.
    pub fn log(&self) -> &[String] {
        &self.store.data().log
    }

    /// The request headers the module left on the last request played.
    pub fn request_headers_after(&self) -> Vec<(String, String)> {
        self.store
            .data()
            .request_headers
            .iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect()
    }

    /// Plays one request through every callback Envoy makes for it and returns its cost.
    pub fn play(&mut self, request: &Request) -> Result<Cost, VmError> {
        let bytes = |pairs: &[(String, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            pairs
                .iter()
                .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
                .collect()
        };
        let host = self.store.data_mut();
        host.request_headers = bytes(&request.headers);
        host.response_headers = bytes(&request.response_headers);
        self.reset();
        let context = self.next_context;
        self.next_context += 1;
        let count = |pairs: &[(String, Vec<u8>)]| Val::I32(pairs.len() as i32);
        self.call(
            "proxy_on_context_create",
            &[Val::I32(context), Val::I32(ROOT_ID)],
        )?;
        self.call(
            "proxy_on_request_headers",
            &[Val::I32(context), count(&request.headers), Val::I32(1)],
        )?;
        self.store.data_mut().clock_ns += 1_500_000;
        self.call(
            "proxy_on_response_headers",
            &[
                Val::I32(context),
                count(&request.response_headers),
                Val::I32(1),
            ],
        )?;
        self.call("proxy_on_log", &[Val::I32(context)])?;
        self.call("proxy_on_done", &[Val::I32(context)])?;
        self.call("proxy_on_delete", &[Val::I32(context)])?;
        Ok(self.take_cost())
    }

    /// The mean cost of `requests` played once each, after `warm_up` of them played once and
    /// not counted (the first requests grow the heap).
    pub fn mean_cost(&mut self, requests: &[Request], warm_up: usize) -> Result<Cost, VmError> {
        for request in requests.iter().cycle().take(warm_up) {
            self.play(request)?;
        }
        let mut total = Cost::default();
        for request in requests {
            let cost = self.play(request)?;
            total.fuel += cost.fuel;
            for (name, calls) in cost.calls {
                *total.calls.entry(name).or_default() += calls;
            }
        }
        Ok(total.divided_by(requests.len().max(1) as u64))
    }

    fn reset(&mut self) {
        let host = self.store.data_mut();
        host.calls.clear();
        let _ = self.store.set_fuel(FUEL);
    }

    fn take_cost(&mut self) -> Cost {
        let fuel = FUEL - self.store.get_fuel().unwrap_or(FUEL);
        let calls = std::mem::take(&mut self.store.data_mut().calls);
        let _ = self.store.set_fuel(FUEL);
        Cost { fuel, calls }
    }

    /// Calls an export; its first result as an integer, if it has one. The fuel is not reset
    /// between calls: a request's callbacks add up.
    fn call(&mut self, name: &str, params: &[Val]) -> Result<Option<i64>, VmError> {
        let func = self
            .instance
            .get_func(&self.store, name)
            .ok_or_else(|| VmError(format!("the module exports no {name}")))?;
        let mut results = vec![Val::I32(0); func.ty(&self.store).results().len()];
        func.call(&mut self.store, params, &mut results)
            .map_err(|err| VmError(format!("{name}: {err}")))?;
        Ok(results.first().and_then(|value| match value {
            Val::I32(v) => Some(i64::from(*v)),
            Val::I64(v) => Some(*v),
            _ => None,
        }))
    }
}

/// A property path as the SDK passes it: the segments separated by NUL bytes.
fn property_path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

/// A header map serialized as proxy-wasm hosts do (the format `header_pairs.rs` reads).
fn serialize_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (name, value) in pairs {
        out.extend((name.len() as u32).to_le_bytes());
        out.extend((value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend(name);
        out.push(0);
        out.extend(value);
        out.push(0);
    }
    out
}

fn i32_at(params: &[Val], index: usize) -> i32 {
    match params.get(index) {
        Some(Val::I32(v)) => *v,
        Some(Val::I64(v)) => *v as i32,
        _ => 0,
    }
}

fn i64_at(params: &[Val], index: usize) -> i64 {
    match params.get(index) {
        Some(Val::I64(v)) => *v,
        Some(Val::I32(v)) => i64::from(*v),
        _ => 0,
    }
}

fn memory(caller: &Caller<'_, Host>) -> Result<Memory, Error> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(Error::new("the module exports no memory")),
    }
}

fn read(caller: &Caller<'_, Host>, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    let mut bytes = vec![0; len as u32 as usize];
    memory(caller)?
        .read(caller, ptr as u32 as usize, &mut bytes)
        .map_err(|err| Error::new(err.to_string()))?;
    Ok(bytes)
}

fn write(caller: &mut Caller<'_, Host>, ptr: i32, bytes: &[u8]) -> Result<(), Error> {
    memory(caller)?
        .write(caller, ptr as u32 as usize, bytes)
        .map_err(|err| Error::new(err.to_string()))
}

/// Hands `bytes` to the module as Envoy does: memory from the module's own allocator
/// (`proxy_on_memory_allocate`, whose fuel counts: the module runs it in Envoy too), its
/// address and size written where the module asked.
fn hand_over(
    caller: &mut Caller<'_, Host>,
    bytes: &[u8],
    ptr_at: i32,
    size_at: i32,
) -> Result<(), Error> {
    let allocate: Func = match caller.get_export("proxy_on_memory_allocate") {
        Some(Extern::Func(func)) => func,
        _ => return Err(Error::new("the module exports no proxy_on_memory_allocate")),
    };
    let mut result = [Val::I32(0)];
    allocate.call(
        caller.as_context_mut(),
        &[Val::I32(bytes.len() as i32)],
        &mut result,
    )?;
    let Val::I32(at) = result[0] else {
        return Err(Error::new("proxy_on_memory_allocate returned no address"));
    };
    write(caller, at, bytes)?;
    write(caller, ptr_at, &at.to_le_bytes())?;
    write(caller, size_at, &(bytes.len() as u32).to_le_bytes())
}

/// One host call: counted under its import name, then served.
fn host_call(
    name: &str,
    mut caller: Caller<'_, Host>,
    params: &[Val],
    results: &mut [Val],
) -> Result<(), Error> {
    let p = |index| i32_at(params, index);
    // Header map calls by map: Envoy's price differs between request and response.
    let kind = match name.contains("header_map") && p(0) == RESPONSE_HEADERS {
        true => format!("{name}(response)"),
        false => name.to_string(),
    };
    *caller.data_mut().calls.entry(kind).or_default() += 1;
    let status = match name {
        "proxy_log" => {
            let message = read(&caller, p(1), p(2))?;
            let line = String::from_utf8_lossy(&message).into_owned();
            caller.data_mut().log.push(line);
            OK
        }
        "proxy_get_log_level" => {
            write(&mut caller, p(0), &2u32.to_le_bytes())?;
            OK
        }
        "proxy_get_buffer_bytes" => {
            if p(0) != PLUGIN_CONFIGURATION {
                NOT_FOUND
            } else {
                let configuration = caller.data().configuration.clone();
                hand_over(&mut caller, &configuration, p(3), p(4))?;
                OK
            }
        }
        "proxy_get_header_map_pairs" => {
            let pairs = caller
                .data_mut()
                .map(p(0))
                .map(|map| serialize_pairs(map))
                .unwrap_or_default();
            hand_over(&mut caller, &pairs, p(1), p(2))?;
            OK
        }
        "proxy_get_header_map_value" => {
            let key = read(&caller, p(1), p(2))?;
            let value = caller.data_mut().map(p(0)).and_then(|map| {
                map.iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| value.clone())
            });
            match value {
                Some(value) => {
                    hand_over(&mut caller, &value, p(3), p(4))?;
                    OK
                }
                None => NOT_FOUND,
            }
        }
        "proxy_replace_header_map_value" | "proxy_add_header_map_value" => {
            let key = read(&caller, p(1), p(2))?;
            let value = read(&caller, p(3), p(4))?;
            let replace = name == "proxy_replace_header_map_value";
            if let Some(map) = caller.data_mut().map(p(0)) {
                match map.iter_mut().find(|(have, _)| *have == key) {
                    Some(pair) if replace => pair.1 = value,
                    _ => map.push((key, value)),
                }
            }
            OK
        }
        "proxy_remove_header_map_value" => {
            let key = read(&caller, p(1), p(2))?;
            if let Some(map) = caller.data_mut().map(p(0)) {
                map.retain(|(have, _)| *have != key);
            }
            OK
        }
        "proxy_get_property" => {
            let path = read(&caller, p(0), p(1))?;
            let value = caller.data().properties.get(&path).cloned();
            match value {
                Some(value) => {
                    hand_over(&mut caller, &value, p(2), p(3))?;
                    OK
                }
                None => NOT_FOUND,
            }
        }
        "proxy_define_metric" => {
            let metric = read(&caller, p(1), p(2))?;
            let host = caller.data_mut();
            host.metrics
                .push((String::from_utf8_lossy(&metric).into_owned(), 0));
            let id = host.metrics.len() as u32;
            write(&mut caller, p(3), &id.to_le_bytes())?;
            OK
        }
        "proxy_increment_metric" | "proxy_record_metric" => {
            let value = i64_at(params, 1);
            let add = name == "proxy_increment_metric";
            let index = (p(0) as u32 as usize).wrapping_sub(1);
            match caller.data_mut().metrics.get_mut(index) {
                Some((_, have)) if add => *have += value,
                Some((_, have)) => *have = value,
                None => return Err(Error::new(format!("{name}: no metric {}", p(0)))),
            }
            OK
        }
        "proxy_get_current_time_nanoseconds" => {
            let now = caller.data().clock_ns;
            write(&mut caller, p(0), &now.to_le_bytes())?;
            OK
        }
        // WASI, as the standard library calls it: no environment, no arguments, writes
        // accepted whole, a fixed clock and fixed random bytes (the same run every time).
        "fd_write" => {
            let (iovs, count) = (p(1), p(2));
            let mut written = 0u32;
            for i in 0..count {
                let iov = read(&caller, iovs + 8 * i, 8)?;
                written += u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
            }
            write(&mut caller, p(3), &written.to_le_bytes())?;
            OK
        }
        "environ_sizes_get" | "args_sizes_get" => {
            write(&mut caller, p(0), &0u32.to_le_bytes())?;
            write(&mut caller, p(1), &0u32.to_le_bytes())?;
            OK
        }
        "clock_time_get" => {
            let now = caller.data().clock_ns;
            write(&mut caller, p(2), &now.to_le_bytes())?;
            OK
        }
        "random_get" => {
            let bytes: Vec<u8> = (0..p(1)).map(|i| (i as u8).wrapping_mul(151)).collect();
            write(&mut caller, p(0), &bytes)?;
            OK
        }
        "proc_exit" => return Err(Error::new("the module exited")),
        // proxy_set_tick_period_milliseconds, proxy_set_effective_context, environ_get,
        // args_get and anything new: nothing to do.
        _ => OK,
    };
    if let Some(result) = results.first_mut() {
        *result = match result {
            Val::I64(_) => Val::I64(i64::from(status)),
            _ => Val::I32(status),
        };
    }
    Ok(())
}

/// One row measured: a request's mean cost, the configure cost and the memory after.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The mean cost of one of the row's requests.
    pub request: Cost,
    /// What `proxy_on_configure` cost.
    pub configure: Cost,
    /// The module's linear memory after the requests, in bytes.
    pub memory_bytes: usize,
}

/// Requests played and not counted before a row's requests are (the first grow the heap).
pub const WARM_UP: usize = 4;

/// Measures one row: `filter` configured as the row says (or `floor` for the floor's row).
pub fn measure(
    filter: &[u8],
    floor: &[u8],
    scenario: &scenarios::Scenario,
) -> Result<Measured, VmError> {
    let (module, configuration) = match &scenario.configuration {
        Some(configuration) => (filter, configuration.as_bytes()),
        None => (floor, &b""[..]),
    };
    let mut vm = Vm::new(module, configuration, scenario.proxy_region)
        .map_err(|err| VmError(format!("{} {}: {err}", scenario.family, scenario.label)))?;
    let request = vm.mean_cost(&scenario.requests, WARM_UP)?;
    Ok(Measured {
        request,
        configure: vm.configure.clone(),
        memory_bytes: vm.memory_bytes(),
    })
}

/// The release builds of the filter and the floor, where `make wasm` and the floor's build put
/// them.
pub fn release_module(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip1/release")
        .join(name)
}

/// The filter the tests measure: the one `make wasm` built, or the one `CANARY_FILTER_WASM`
/// names (another build, to compare).
pub fn filter_module() -> std::path::PathBuf {
    std::env::var_os("CANARY_FILTER_WASM")
        .map_or_else(|| release_module("canary_filter.wasm"), Into::into)
}

/// Reads a built module, with a message that says how to build it.
pub fn read_module(path: &std::path::Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(|err| {
        VmError(format!(
            "{}: {err} (build it first: `make wasm`, and for the floor `cargo build --release --target wasm32-wasip1 -p canary-floor`)",
            path.display()
        ))
    })
}
