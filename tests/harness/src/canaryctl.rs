//! Running canaryctl in the control crate's integration tests. Only they know the binary's path
//! (`env!("CARGO_BIN_EXE_canaryctl")`): they pass it in.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::kube::KubeApi;
use crate::mesh::Mesh;

/// canaryctl at `bin` run with `args` on the mesh's ECDS file (`--ecds`) and front's admin
/// endpoint (`--admin`), given after `args` (the command's name first among them).
pub fn on_mesh(bin: &str, mesh: &Mesh, args: &[impl AsRef<OsStr>]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .args(["--ecds", &mesh.ecds_file().display().to_string()])
        .args(["--admin", &mesh.front().admin_url()]);
    command
}

/// canaryctl at `bin` as a user runs it on a WasmPlugin: the stand-in API server `api` as
/// kubectl's cluster (KUBECONFIG), and none of canaryctl's own environment variables. It runs
/// in the stand-in's directory, as an operator of that cluster in a directory of their own:
/// the rollout state a WasmPlugin rollout keeps in `.canaryctl/` of the current directory
/// (its lock, its pause file) is then per cluster, as the tests run several at once.
pub fn on_kube(bin: &str, api: &KubeApi, args: &[impl AsRef<OsStr>]) -> Command {
    let mut command = Command::new(bin);
    let kubeconfig = api.kubeconfig();
    if let Some(dir) = kubeconfig.parent() {
        command.current_dir(dir);
    }
    command
        .args(args)
        .env("KUBECONFIG", api.kubeconfig())
        .env("KUBECACHEDIR", api.cache_dir())
        .env_remove("CANARY_ECDS")
        .env_remove("CANARY_ADMIN")
        .env_remove("CANARY_WASMPLUGIN");
    command
}

/// Runs `command` to its end, its standard output and error printed for the test's log.
///
/// # Panics
///
/// If the command cannot be started.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The standard output of a canaryctl run that succeeded.
///
/// # Panics
///
/// If the run failed: the test fails with its status and both outputs.
pub fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "canaryctl failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A canaryctl process whose standard output arrives line by line (and is printed for the
/// test's log); killed by its PID when dropped, also when the test fails.
pub struct Running {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// How a [`Running`] canaryctl ended.
pub struct Exit {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// The lines of standard output that no [`Running::until`] had read.
    pub rest: Vec<String>,
    /// The whole standard output.
    pub stdout: String,
}

impl Running {
    /// Starts `command` with its standard output piped.
    ///
    /// # Panics
    ///
    /// If the command cannot be started.
    pub fn spawn(command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("{command:?}: {err}"));
        let stdout = child.stdout.take();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout
                .into_iter()
                .flat_map(|out| BufReader::new(out).lines())
            {
                let Ok(line) = line else { break };
                println!("{line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Reads standard output up to the first line `want` accepts, within `timeout`: the lines
    /// read, that one last.
    ///
    /// # Panics
    ///
    /// If no such line comes within `timeout`: the test fails with all the lines seen.
    pub fn until(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let start = self.seen.len();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = want(&line);
                    self.seen.push(line);
                    if done {
                        return self.seen[start..].to_vec();
                    }
                }
                Err(_) => panic!(
                    "not seen within {timeout:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the exit, within `timeout`.
    ///
    /// # Panics
    ///
    /// If it is still running after `timeout` (it is killed first).
    pub fn wait(mut self, timeout: Duration) -> Exit {
        let deadline = Instant::now() + timeout;
        let Some(mut child) = self.child.take() else {
            panic!("no process");
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() <= deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                waited => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("still running after {timeout:?} ({waited:?})");
                }
            }
        };
        let start = self.seen.len();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        Exit {
            code: status.code(),
            rest: self.seen[start..].to_vec(),
            stdout: self.seen.join("\n"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
