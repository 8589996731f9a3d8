//! Writing the ECDS file safely, without Envoy: through the library (`EcdsFile`, `Locked`) and
//! through the canaryctl binary. The file keeps its format, owner and mode; a symlink stays a
//! symlink; read-only files, FIFOs and held locks are refused with a message; refused input
//! leaves nothing on disk. (Envoy's side of these is in `ecds_writes.rs`.)
//!
//! Some tests give files to another owner (uid 65534): they run as root, as the project's tests
//! do.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use canary_control::config::edit;
use canary_control::mesh::ecds::{self, EcdsFile, Format};
use canary_filter::CanaryConfig;
use canary_harness::canaryctl::succeeded;
use tempfile::TempDir;

const CANARYCTL: &str = env!("CARGO_BIN_EXE_canaryctl");

/// The shipped ECDS resource (YAML): versions stable and canary, canary at 10 %.
const SHIPPED_ECDS: &str = include_str!("../../envoy/ecds/canary-filter.yaml");

/// Not root's: an owner canaryctl (running as root) must keep.
const NOBODY: u32 = 65534;

/// How long a child canaryctl may take before the test kills it and fails.
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// The shipped ECDS resource in the format Envoy reads a file named `name` in.
fn ecds_text(name: &str) -> String {
    if name.ends_with(".json") {
        let doc: serde_json::Value = serde_yaml_ng::from_str(SHIPPED_ECDS).unwrap();
        serde_json::to_string_pretty(&doc).unwrap()
    } else {
        SHIPPED_ECDS.to_string()
    }
}

/// A temporary directory holding the shipped ECDS resource as `name`.
fn ecds_in_temp_dir(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, ecds_text(name)).unwrap();
    (dir, path)
}

fn canary_at(weight: f64) -> impl Fn(&CanaryConfig) -> Result<CanaryConfig> {
    move |config| edit::set_weights(config, &[("canary".to_string(), weight)], None)
}

fn canary_weight(path: &Path) -> f64 {
    EcdsFile::new(path).read().unwrap().config.weights["canary"]
}

/// Every path under `dir` (recursively, symlinks not followed) with its type, mode and size.
fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path.clone());
            }
            entries.insert(
                path.strip_prefix(dir).unwrap().to_path_buf(),
                format!("{:?} {:o} {}", meta.file_type(), meta.mode(), meta.len()),
            );
        }
    }
    entries
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn mkfifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `name` is a NUL-terminated path that outlives the call.
    let status = unsafe { libc::mkfifo(name.as_ptr(), 0o644) };
    assert_eq!(status, 0, "mkfifo {}", std::io::Error::last_os_error());
}

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test gives files to another owner: run it as root"
    );
}

/// Runs canaryctl with `args` and `envs`; kills it by its PID and fails the test if it has not
/// exited within [`CHILD_LIMIT`].
fn canaryctl(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let child = Command::new(CANARYCTL)
        .args(args)
        .env_remove("CANARY_ECDS")
        .env_remove("CANARY_ADMIN")
        .env_remove("CANARY_LOCK_TIMEOUT")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match outcome.recv_timeout(CHILD_LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let pid = libc::pid_t::try_from(pid).unwrap();
            // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("canaryctl {args:?} had not exited after {CHILD_LIMIT:?}; killed pid {pid}");
        }
    }
}

/// Runs `check` on a thread and fails the test if it has not returned within [`CHILD_LIMIT`]:
/// a lock taken twice in one process waits for itself, and a FIFO opened waits for a writer.
fn within_limit<T: Send + 'static>(what: &str, check: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || done.send(check()));
    match outcome.recv_timeout(CHILD_LIMIT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {CHILD_LIMIT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} failed (its panic is above)"),
    }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Defect 1: the staged file used to be created private (0600, root's), so Envoy running as
/// another user could no longer read the file after a write.
#[test]
fn a_write_keeps_the_files_mode_and_owner() {
    assert_root();
    let (_dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let file = EcdsFile::new(&path);

    assert!(file.update(false, canary_at(40.0)).unwrap().written);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(canary_weight(&path), 40.0);
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));

    file.undo().unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(canary_weight(&path), 10.0);
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
}

/// Defect 2: a `.json` file was written as YAML, which Envoy refuses. It is written as JSON,
/// and its history (for `undo`) holds JSON too.
#[test]
fn a_json_file_is_written_as_json_and_undone_as_json() {
    let (_dir, path) = ecds_in_temp_dir("canary-filter.json");
    let original = fs::read(&path).unwrap();
    let file = EcdsFile::new(&path);
    assert_eq!(file.format().unwrap(), Format::Json);

    file.update(false, canary_at(40.0)).unwrap();
    let written = fs::read_to_string(&path).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&written).expect("the file is JSON");
    assert_eq!(doc["resources"][0]["name"], "canary-filter");
    assert!(
        written.contains("\n  \"resources\": ["),
        "not pretty: {written}"
    );
    // The configuration, a string inside the JSON, is written on one line: indenting it only
    // gives Envoy more bytes to parse.
    let value = doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .expect("the configuration is a string");
    assert!(!value.contains('\n'), "configuration not compact: {value}");
    assert_eq!(canary_weight(&path), 40.0);
    let history = file.history().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].extension().unwrap(), "json");
    assert_eq!(fs::read(&history[0]).unwrap(), original);

    file.update(false, canary_at(50.0)).unwrap();
    file.undo().unwrap();
    assert_eq!(canary_weight(&path), 40.0);
    serde_json::from_slice::<serde_json::Value>(&fs::read(&path).unwrap())
        .expect("JSON after undo");
    file.undo().unwrap();
    assert_eq!(fs::read(&path).unwrap(), original);
    assert!(file.history().unwrap().is_empty());
}

/// `.yml` is YAML to Envoy, as `.yaml` is.
#[test]
fn a_yml_file_is_written_as_yaml_and_undone() {
    let (_dir, path) = ecds_in_temp_dir("canary-filter.yml");
    let original = fs::read(&path).unwrap();
    let file = EcdsFile::new(&path);
    assert_eq!(file.format().unwrap(), Format::Yaml);

    file.update(false, canary_at(40.0)).unwrap();
    let written = fs::read(&path).unwrap();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&written).is_err(),
        "written as JSON"
    );
    assert!(written.starts_with(b"# The canary filter"));
    assert_eq!(canary_weight(&path), 40.0);
    let history = file.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].extension().unwrap(), "yml");

    file.undo().unwrap();
    assert_eq!(fs::read(&path).unwrap(), original);
}

/// Envoy would not parse a file named otherwise as JSON or YAML: canaryctl refuses it, saying
/// which names work, and creates nothing.
#[test]
fn an_ecds_file_with_another_extension_is_refused_and_nothing_is_created() {
    let (dir, path) = ecds_in_temp_dir("canary-filter.txt");
    let before = listing(dir.path());
    let err = EcdsFile::new(&path)
        .update(false, canary_at(40.0))
        .unwrap_err();
    let message = format!("{err:#}");
    for needle in [path.to_str().unwrap(), ".json", ".yaml", ".yml"] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(listing(dir.path()), before);
}

/// A `.json` file holding YAML is refused on reading, as Envoy refuses it.
#[test]
fn a_json_file_holding_yaml_is_refused_as_envoy_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary-filter.json");
    fs::write(&path, SHIPPED_ECDS).unwrap();
    let before = listing(dir.path());
    let message = format!("{:#}", EcdsFile::new(&path).read().unwrap_err());
    assert!(
        message.contains("not JSON") && message.contains("Envoy") && message.contains("refuse"),
        "{message}"
    );
    assert!(EcdsFile::new(&path).update(false, canary_at(40.0)).is_err());
    assert_eq!(listing(dir.path()), before);

    // `validate` reads it as Envoy does too.
    let output = canaryctl(&["validate", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("not JSON"),
        "{}",
        stderr_of(&output)
    );
}

/// Defect 3: a symlink was replaced by a regular file. The write goes to the link's final
/// target (keeping the target's mode and owner) and the link is re-pointed by rename (a new
/// inode with the same text), which is what Envoy's directory watch notices.
#[test]
fn a_symlink_stays_a_symlink_and_its_target_is_written() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let (watched, data) = (dir.path().join("ecds"), dir.path().join("data"));
    fs::create_dir_all(&watched).unwrap();
    fs::create_dir_all(&data).unwrap();
    let target = data.join("canary-filter.yaml");
    fs::write(&target, SHIPPED_ECDS).unwrap();
    std::os::unix::fs::chown(&target, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o604)).unwrap();
    let link = watched.join("canary-filter.yaml");
    let link_text = Path::new("../data/canary-filter.yaml");
    std::os::unix::fs::symlink(link_text, &link).unwrap();
    let link_inode = fs::symlink_metadata(&link).unwrap().ino();
    let file = EcdsFile::new(&link);

    assert!(file.update(false, canary_at(40.0)).unwrap().written);
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the link became a {:?}",
        meta.file_type()
    );
    assert_eq!(fs::read_link(&link).unwrap(), link_text);
    assert_ne!(
        meta.ino(),
        link_inode,
        "the link was not re-pointed by rename"
    );
    assert_eq!(canary_weight(&target), 40.0);
    let target_meta = fs::metadata(&target).unwrap();
    assert_eq!(target_meta.mode() & 0o7777, 0o604);
    assert_eq!((target_meta.uid(), target_meta.gid()), (NOBODY, NOBODY));
    // Nothing staged is left behind, in either directory.
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&data), ["canary-filter.yaml"]);
    assert_eq!(names(&watched), [".canaryctl", "canary-filter.yaml"]);

    file.undo().unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).unwrap(), link_text);
    assert_eq!(fs::read_to_string(&target).unwrap(), SHIPPED_ECDS);
    assert_eq!(mode_of(&target), 0o604);
}

/// Defect 4: a file nobody may write was replaced without a word. It is refused (nothing is
/// created), unless forced; forced, it is written and stays read-only.
#[test]
fn a_read_only_file_is_refused_unless_forced() {
    let (dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let before = listing(dir.path());

    let message = format!(
        "{:#}",
        EcdsFile::new(&path)
            .update(false, canary_at(40.0))
            .unwrap_err()
    );
    for needle in [path.to_str().unwrap(), "0444", "--force"] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(listing(dir.path()), before);
    assert_eq!(fs::read_to_string(&path).unwrap(), SHIPPED_ECDS);

    let forced = EcdsFile::new(&path).with_force(true);
    assert!(forced.update(false, canary_at(40.0)).unwrap().written);
    assert_eq!(canary_weight(&path), 40.0);
    assert_eq!(mode_of(&path), 0o444);
    assert!(EcdsFile::new(&path).undo().is_err(), "undo without force");
    forced.undo().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), SHIPPED_ECDS);
    assert_eq!(mode_of(&path), 0o444);
}

/// Defect 6: a FIFO as the ECDS file made canaryctl wait forever for a writer. It, a directory
/// or a device (here behind a symlink) is refused at once, saying what it is.
#[test]
fn a_fifo_a_directory_or_a_device_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    mkfifo(&fifo);
    let directory = dir.path().join("directory.yaml");
    fs::create_dir(&directory).unwrap();
    let device = dir.path().join("device.yaml");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    let before = listing(dir.path());

    let paths = [fifo.clone(), directory.clone(), device.clone()];
    let messages = within_limit("refusing a FIFO, a directory and a device", move || {
        paths
            .iter()
            .map(|path| {
                format!(
                    "{:#}",
                    EcdsFile::new(path)
                        .update(false, canary_at(40.0))
                        .unwrap_err()
                )
            })
            .collect::<Vec<String>>()
    });
    assert!(messages[0].contains("is a FIFO"), "{}", messages[0]);
    assert!(messages[1].contains("is a directory"), "{}", messages[1]);
    assert!(
        messages[2].contains("is a character device"),
        "{}",
        messages[2]
    );
    for (message, path) in messages.iter().zip([&fifo, &directory, &device]) {
        assert!(message.contains(path.to_str().unwrap()), "{message}");
    }
    assert_eq!(listing(dir.path()), before);

    // The binary, bounded: before the fix it never returned.
    let output = canaryctl(
        &[
            "set",
            "--weight",
            "canary=40",
            "--ecds",
            fifo.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("is a FIFO") && stderr.contains(fifo.to_str().unwrap()),
        "{stderr}"
    );
    assert_eq!(listing(dir.path()), before);
}

/// Defect 6: a writer that finds the lock held gives up after the timeout, naming the holder
/// (whose description the lock file carries while it holds the lock) and the lock file.
#[test]
fn a_held_lock_times_out_naming_the_holder() {
    let (_dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    let holder = EcdsFile::new(&path);
    let lock_path = holder.lock_path().unwrap();
    let held = holder.lock().unwrap();
    let description = fs::read_to_string(&lock_path).unwrap();
    let pid = format!("pid {} (", std::process::id());
    assert!(description.starts_with(&pid), "{description}");
    assert!(description.contains(", since 20"), "{description}");

    let waiter = EcdsFile::new(&path).with_lock_timeout(Duration::from_millis(200));
    let waiting = waiter.clone();
    let (message, waited) = within_limit("the waiter", move || {
        let started = Instant::now();
        let message = format!("{:#}", waiting.update(false, canary_at(40.0)).unwrap_err());
        (message, started.elapsed())
    });
    assert!(
        waited >= Duration::from_millis(200),
        "gave up after {waited:?}"
    );
    for needle in [
        path.to_str().unwrap(),
        lock_path.to_str().unwrap(),
        description.trim(),
        "gave up after 200ms",
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(canary_weight(&path), 10.0);

    drop(held);
    assert_eq!(
        fs::read_to_string(&lock_path).unwrap(),
        "",
        "a stale holder"
    );
    assert!(waiter.update(false, canary_at(40.0)).unwrap().written);
}

/// Defect 5: the lock is a guard; what is done through it (read, write, restore) happens
/// without taking the lock again, and no other writer gets in meanwhile.
#[test]
fn a_locked_update_and_its_restore_hold_the_one_lock() {
    let (dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    within_limit("the locked update and restore", move || {
        let file = EcdsFile::new(&path).with_lock_timeout(Duration::from_secs(1));
        let other = EcdsFile::new(&path).with_lock_timeout(Duration::ZERO);
        let locked = file.lock().unwrap();
        let update = locked.update(canary_at(40.0)).unwrap();
        assert!(update.written);
        assert_eq!(locked.read().unwrap().config.weights["canary"], 40.0);
        assert!(other.lock().is_err(), "another writer got the lock");
        locked
            .restore(&update.after_bytes, &update.before_bytes)
            .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), SHIPPED_ECDS);
        assert!(other.lock().is_err(), "another writer got the lock");
        drop(locked);
        other.lock().unwrap();
        drop(dir);
    });
}

/// Defect 7: refused input (and a dry run) left `.canaryctl/` behind; now nothing is created.
#[test]
fn refused_input_and_dry_runs_create_nothing() {
    let (dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    let before = listing(dir.path());
    let file = EcdsFile::new(&path);
    assert!(file
        .update(false, |config| edit::set_weights(
            config,
            &[("beta".to_string(), 5.0)],
            None
        ))
        .is_err());
    assert!(file.update(false, canary_at(120.0)).is_err());
    assert!(file.undo().is_err());
    let dry = file.update(true, canary_at(40.0)).unwrap();
    assert!(!dry.written && dry.changed());
    assert_eq!(listing(dir.path()), before);

    let ecds = path.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["set", "--weight", "beta=5"], 1, "no version is named"),
        (&["set", "--weight", "canary=120"], 1, "not a percent"),
        (&["promote", "stable"], 1, "already the default"),
        (&["retire", "canary"], 1, "still has weight"),
        (&["undo"], 1, "no earlier version"),
        (&["set", "--weight", "canary=40", "--dry-run"], 0, ""),
        (&["rollback", "--dry-run"], 0, ""),
    ];
    for (args, code, message) in cases {
        let mut args = args.to_vec();
        args.extend(["--ecds", ecds]);
        let output = canaryctl(&args, &[]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(*code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: {stderr:?} lacks {message:?}"
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "{args:?} left something on disk"
        );
    }
}

/// The binary: `--lock-timeout` (and `CANARY_LOCK_TIMEOUT`) bound the wait for a held lock, and
/// the message names the holder's pid and the lock file.
#[test]
fn canaryctl_gives_up_on_a_held_lock_naming_the_holder() {
    let (_dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    let file = EcdsFile::new(&path);
    file.update(false, canary_at(40.0)).unwrap();
    let lock_path = file.lock_path().unwrap();
    let held = file.lock().unwrap();
    let ecds = path.to_str().unwrap();
    let pid = format!("pid {} (", std::process::id());

    let started = Instant::now();
    let output = canaryctl(
        &[
            "set",
            "--weight",
            "canary=5",
            "--ecds",
            ecds,
            "--lock-timeout",
            "1s",
        ],
        &[],
    );
    let waited = started.elapsed();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for needle in [&pid, lock_path.to_str().unwrap(), "gave up after 1s"] {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
    assert!(waited >= Duration::from_secs(1), "gave up after {waited:?}");

    let output = canaryctl(
        &["undo", "--ecds", ecds],
        &[("CANARY_LOCK_TIMEOUT", "300ms")],
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&pid) && stderr.contains("gave up after 300ms"),
        "{stderr}"
    );
    assert_eq!(canary_weight(&path), 40.0);

    drop(held);
    succeeded(&canaryctl(
        &["undo", "--ecds", ecds, "--lock-timeout", "1s"],
        &[],
    ));
    assert_eq!(canary_weight(&path), 10.0);
}

/// The binary: a read-only file is refused by every write command unless `--force`.
#[test]
fn canaryctl_refuses_a_read_only_file_unless_forced() {
    let (dir, path) = ecds_in_temp_dir("canary-filter.yaml");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let before = listing(dir.path());
    let ecds = path.to_str().unwrap();
    for args in [
        &["set", "--weight", "canary=40"][..],
        &["rollback"],
        &["promote"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--ecds", ecds]);
        let output = canaryctl(&args, &[]);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        for needle in [ecds, "0444", "--force"] {
            assert!(
                stderr.contains(needle),
                "{args:?}: {stderr:?} lacks {needle:?}"
            );
        }
        assert_eq!(listing(dir.path()), before);
    }

    let out = succeeded(&canaryctl(&["rollback", "--force", "--ecds", ecds], &[]));
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(canary_weight(&path), 0.0);
    assert_eq!(mode_of(&path), 0o444);
    let output = canaryctl(&["undo", "--ecds", ecds], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("--force"));
    succeeded(&canaryctl(&["undo", "--force", "--ecds", ecds], &[]));
    assert_eq!(fs::read_to_string(&path).unwrap(), SHIPPED_ECDS);
    assert_eq!(mode_of(&path), 0o444);
}

/// `parse` (for `validate` of files of either format) still reads both; `parse_as` as Envoy.
#[test]
fn parse_as_follows_the_format() {
    let json = ecds_text("x.json");
    assert!(ecds::parse(json.as_bytes()).is_ok());
    assert!(ecds::parse_as(json.as_bytes(), Format::Json).is_ok());
    assert!(ecds::parse_as(json.as_bytes(), Format::Yaml).is_ok());
    assert!(ecds::parse_as(SHIPPED_ECDS.as_bytes(), Format::Json).is_err());
    for name in ["a.json", "a.JSON", "a.yaml", "a.yml", "a.YML"] {
        assert!(Format::of(Path::new(name)).is_ok(), "{name}");
    }
    for name in ["a.txt", "a", "a.json.bak", "a.pb"] {
        assert!(Format::of(Path::new(name)).is_err(), "{name}");
    }
}

/// A missing ECDS file (canaryctl run outside the repository, say) is an error that says how
/// to name the right one, and creates nothing.
#[test]
fn a_missing_ecds_file_names_the_flag_and_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("envoy/ecds/canary-filter.yaml");
    let output = canaryctl(
        &[
            "set",
            "--weight",
            "canary=5",
            "--ecds",
            &missing.display().to_string(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--ecds") && stderr.contains("CANARY_ECDS"),
        "{stderr}"
    );
    assert!(listing(dir.path()).is_empty());
}
