//! Packaging: the systemd unit passes `systemd-analyze verify` and keeps its
//! `systemd-analyze security` exposure; the .deb built by cargo-deb holds man pages that `man`
//! renders, installs with `dpkg -i`, runs from /usr/bin as the system user its postinst creates,
//! and removes cleanly; the static musl build (the container's binary) links without a dynamic
//! loader and serves.
//!
//! These are second-tier tests: a plain `cargo test` skips them with a message (the unit's
//! own lines are still checked). The tools come from scripts/test (Debian's `systemd`, `man-db`
//! and `musl-tools`, `cargo install cargo-deb`, `rustup target add`), which runs them with
//! `LATCHKEY_TEST_FULL=1`; a missing one then fails the test with the reason, never skips it.
//! The .deb test installs a package on this machine, so it needs root (CI runs as root),
//! holds a machine-wide lock while it does, and removes the package, the user and the data
//! directory it created even when an assertion fails.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, clean_env, needs, temp_dir};

/// The unit as shipped, relative to the crate root.
const UNIT: &str = "packaging/latchkey.service";
/// The highest `systemd-analyze security` exposure the unit may have, in tenths (1.1 today):
/// a change that weakens the sandbox fails here.
const MAX_EXPOSURE_TENTHS: u32 = 11;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command to completion; a command that cannot be started fails with `hint`.
fn run(cmd: &mut Command, hint: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): {hint}"))
}

/// Runs a command that must succeed and returns its stdout.
fn run_ok(cmd: &mut Command, hint: &str) -> String {
    let out = run(cmd, hint);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `systemd-analyze`, or a loud failure saying how to get it.
fn systemd_analyze() -> Command {
    let path = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(path).is_file(),
        "{path} is missing: install Debian's `systemd` package (scripts/test does)"
    );
    Command::new(path)
}

/// Starts `cmd` (a `latchkey serve --listen 127.0.0.1:0`), waits for its `listening on` line,
/// checks `healthcheck_bin healthcheck --listen ADDR` exits 0, sends SIGTERM and expects exit 0.
fn serve_healthcheck_stop(mut cmd: Command, healthcheck_bin: &str) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok);
    std::thread::spawn(move || for _ in lines {});
    let Some(addr) = first
        .as_deref()
        .and_then(|l| l.strip_prefix("listening on http://"))
        .map(str::to_string)
    else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{cmd:?} did not announce its address (first line {first:?}); logs:\n{}",
            logs.join().unwrap_or_default()
        );
    };
    let health = run(
        Command::new(healthcheck_bin).args(["healthcheck", "--listen", &addr]),
        "the binary under test",
    );
    let killed = run(
        Command::new("kill").args(["-TERM", &child.id().to_string()]),
        "kill(1) is in procps",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let logs = logs.join().unwrap_or_default();
    assert!(
        health.status.success(),
        "healthcheck against {addr} failed ({}): {}{}\nserver logs:\n{logs}",
        health.status,
        text(&health.stdout),
        text(&health.stderr)
    );
    assert!(killed.status.success(), "kill -TERM failed");
    assert!(
        status.success(),
        "{cmd:?} exited with {status} after SIGTERM; logs:\n{logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------------------------

/// `systemd-analyze verify` on the unit, with ExecStart pointing at the binary these tests
/// built (verify insists that the command exists; the installed copy is verified as shipped by
/// `deb_package_installs_runs_and_removes`), and the design the .deb relies on.
#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(crate_dir().join(UNIT)).unwrap();
    for line in [
        "ExecStart=/usr/bin/latchkey serve",
        // The postinst creates this user and /var/lib/latchkey for it.
        "User=latchkey",
        "StateDirectory=latchkey",
        "Environment=LATCHKEY_DATA_DIR=/var/lib/latchkey",
        "EnvironmentFile=-/etc/latchkey/latchkey.env",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "UMask=0077",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "{UNIT} lacks the line {line:?}"
        );
    }

    if !needs(&["systemd-analyze"]) {
        return;
    }
    let dir = temp_dir("unit");
    let copy = dir.join("latchkey.service");
    let exec = format!("ExecStart={} serve", bin());
    std::fs::write(
        &copy,
        unit.replace("ExecStart=/usr/bin/latchkey serve", &exec),
    )
    .unwrap();
    let out = run(systemd_analyze().arg("verify").arg(&copy), "systemd");
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("latchkey"),
        "systemd-analyze verify {UNIT} ({}):\n{stderr}{}",
        out.status,
        text(&out.stdout)
    );
}

/// `systemd-analyze security --offline=true`: the exposure stays at or below
/// MAX_EXPOSURE_TENTHS.
#[test]
fn systemd_unit_security_exposure() {
    if !needs(&["systemd-analyze"]) {
        return;
    }
    let out = run(
        systemd_analyze()
            .args([
                "security",
                "--offline=true",
                "--no-pager",
                &format!("--threshold={MAX_EXPOSURE_TENTHS}"),
            ])
            .arg(crate_dir().join(UNIT)),
        "systemd",
    );
    let stdout = text(&out.stdout);
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("(no overall exposure line)")
        .to_string();
    assert!(
        out.status.success(),
        "systemd-analyze security rates {UNIT} above {}.{}: {overall}\n{stdout}{}",
        MAX_EXPOSURE_TENTHS / 10,
        MAX_EXPOSURE_TENTHS % 10,
        text(&out.stderr)
    );
    eprintln!("{overall}");
}

// ---------------------------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------------------------

/// A machine-wide lock held by a `flock(1)` child: released when the guard is dropped or when
/// this process dies (the child's stdin closes), so a crashed run never leaves it held.
struct MachineLock {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl MachineLock {
    fn acquire(path: &str) -> MachineLock {
        let mut child = Command::new("flock")
            .args(["--exclusive", "--timeout", "900", path, "-c"])
            .arg("echo locked; exec cat >/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run flock(1) (util-linux): {e}"));
        let stdin = child.stdin.take();
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        assert_eq!(
            line.trim(),
            "locked",
            "could not take {path} within 900 s (another packaging test is installing latchkey?)"
        );
        MachineLock { child, stdin }
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Undoes what installing the package did to this machine, whatever the test got to.
struct Uninstall {
    user_existed: bool,
    data_dir_existed: bool,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let purge = Command::new("dpkg")
            .args(["--purge", "latchkey"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        match purge {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("cleanup: dpkg --purge latchkey: {}", text(&o.stderr)),
            Err(e) => eprintln!("cleanup: dpkg --purge latchkey: {e}"),
        }
        if !self.data_dir_existed {
            let _ = std::fs::remove_dir_all("/var/lib/latchkey");
        }
        if !self.user_existed {
            // userdel also removes the user's own group (USERGROUPS_ENAB); groupdel is for a
            // login.defs that says otherwise.
            let _ = Command::new("userdel").arg("latchkey").output();
            let _ = Command::new("groupdel").arg("latchkey").output();
        }
    }
}

fn getent_passwd(name: &str) -> Option<Vec<String>> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    out.status.success().then(|| {
        text(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_string)
            .collect()
    })
}

fn package_status() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "latchkey"])
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default()
}

/// The package holds the man pages, gzipped where man(1) looks for them (`latchkey.1` and one
/// per subcommand), and `man` renders them.
fn check_man_pages(deb: &Path, scratch: &Path) {
    let contents = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb), "dpkg");
    for page in [
        "latchkey.1.gz",
        "latchkey-serve.1.gz",
        "latchkey-rule-add.1.gz",
    ] {
        let want = format!("./usr/share/man/man1/{page}");
        assert!(
            contents.lines().any(|l| l.ends_with(&want)),
            "{want} is not in the package:\n{contents}"
        );
    }
    let unpacked = scratch.join("unpacked");
    run_ok(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked),
        "dpkg",
    );
    let man = "/usr/bin/man";
    assert!(
        Path::new(man).is_file(),
        "{man} is missing: install Debian's `man-db` package (scripts/test does)"
    );
    for (page, says) in [
        ("latchkey.1.gz", "Manage forward-auth access rules"),
        ("latchkey-rule-add.1.gz", "--allow-group"),
    ] {
        let out = run(
            Command::new(man)
                .arg("-l")
                .arg(unpacked.join("usr/share/man/man1").join(page))
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "200")
                .env("LC_ALL", "C.UTF-8"),
            "man-db",
        );
        let shown = text(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
        assert!(
            out.status.success() && shown.contains(says),
            "man -l {page} ({}): {}\n{shown}",
            out.status,
            text(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&unpacked).unwrap();
}

/// Builds the .deb from the binary these tests already built (no release build: cargo-deb is
/// pointed at a target directory whose `release/latchkey` is that binary, and strips it), installs
/// it with `dpkg -i`, runs the installed binary as the `latchkey` user the postinst created, and
/// removes it again.
#[test]
fn deb_package_installs_runs_and_removes() {
    if !needs(&["cargo-deb", "dpkg", "root"]) {
        return;
    }
    let uid = run_ok(Command::new("id").arg("-u"), "coreutils");
    assert_eq!(
        uid.trim(),
        "0",
        "installing a .deb needs root: run the tests as root (CI does), e.g. in a container"
    );
    let version = env!("CARGO_PKG_VERSION");
    let cargo = env!("CARGO");
    let deb_version = run(
        Command::new(cargo).args(["deb", "--version"]),
        "cargo is the one running these tests",
    );
    assert!(
        deb_version.status.success(),
        "cargo-deb is missing: `cargo install cargo-deb --locked` (scripts/test does)\n{}",
        text(&deb_version.stderr)
    );

    // Build the package into a private target directory.
    let started = Instant::now();
    let target = temp_dir("deb");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(bin(), target.join("release/latchkey")).unwrap();
    // The man pages, written by the binary where Cargo.toml's assets take them from.
    let man_dir = crate_dir().join("target/man");
    let _ = std::fs::remove_dir_all(&man_dir);
    run_ok(
        Command::new(bin()).arg("man").arg(&man_dir),
        "the binary under test",
    );
    run_ok(
        Command::new(cargo)
            .args(["deb", "--no-build", "--strip", "--fast", "--output"])
            .arg(&target)
            .current_dir(crate_dir())
            .env("CARGO_TARGET_DIR", &target),
        "cargo-deb",
    );
    let deb: PathBuf = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("cargo deb wrote no .deb into {}", target.display()));
    let field = |name: &str| {
        run_ok(
            Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name),
            "dpkg",
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "latchkey");
    assert_eq!(field("Version"), format!("{version}-1"));
    assert!(
        field("Depends").contains("adduser"),
        "the postinst runs adduser"
    );
    let built = started.elapsed();
    check_man_pages(&deb, &target);

    // Install, with the machine to ourselves.
    let _lock = MachineLock::acquire("/run/lock/latchkey-packaging-test.lock");
    let status = package_status();
    assert!(
        !status.contains("installed") && !status.contains("unpacked"),
        "a latchkey package is already on this machine ({status:?}); the test installs and \
         purges it, so remove it first: dpkg --purge latchkey"
    );
    assert!(
        !Path::new("/usr/bin/latchkey").exists(),
        "/usr/bin/latchkey exists but belongs to no package; the test will not overwrite it"
    );
    let cleanup = Uninstall {
        user_existed: getent_passwd("latchkey").is_some(),
        data_dir_existed: Path::new("/var/lib/latchkey").exists(),
    };
    let installing = Instant::now();
    run_ok(
        Command::new("dpkg")
            .arg("-i")
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "dpkg",
    );
    let installed = installing.elapsed();
    let _ = std::fs::remove_dir_all(&target);

    // The installed binary reports the package's version.
    let out = run_ok(
        Command::new("/usr/bin/latchkey").arg("--version"),
        "installed by the package",
    );
    assert_eq!(out.trim(), format!("latchkey {version}"));
    let installed_version = run_ok(
        Command::new("dpkg-query").args(["-W", "-f=${Version}", "latchkey"]),
        "dpkg",
    );
    assert_eq!(installed_version, format!("{version}-1"));

    // The files, and the unit exactly as in the source tree.
    let mode = std::fs::metadata("/usr/bin/latchkey")
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "/usr/bin/latchkey mode {mode:o}");
    let unit = "/lib/systemd/system/latchkey.service";
    assert_eq!(
        std::fs::read_to_string(unit).unwrap_or_else(|e| panic!("{unit}: {e}")),
        std::fs::read_to_string(crate_dir().join(UNIT)).unwrap()
    );
    for doc in ["README.md", "latchkey.env.example", "copyright"] {
        let p = Path::new("/usr/share/doc/latchkey").join(doc);
        assert!(p.is_file(), "{} is missing", p.display());
    }
    // Verified as installed, with its real ExecStart.
    let out = run(systemd_analyze().arg("verify").arg(unit), "systemd");
    assert!(
        out.status.success() && !text(&out.stderr).contains("latchkey"),
        "systemd-analyze verify {unit}:\n{}",
        text(&out.stderr)
    );

    // The postinst made the system user and a private data directory.
    let user = getent_passwd("latchkey").expect("the postinst did not create the user latchkey");
    let user_uid: u32 = user[2].parse().unwrap();
    assert!(user_uid < 1000, "latchkey is not a system user: {user:?}");
    assert_eq!(user[5], "/var/lib/latchkey", "home: {user:?}");
    assert!(user[6].ends_with("nologin"), "shell: {user:?}");
    let dir = std::fs::metadata("/var/lib/latchkey").expect("no /var/lib/latchkey");
    assert_eq!(dir.uid(), user_uid, "/var/lib/latchkey owner");
    assert_eq!(dir.mode() & 0o7777, 0o700, "/var/lib/latchkey mode");

    // What the unit runs, as the unit's user (setpriv execs, so SIGTERM reaches latchkey).
    let mut serve = Command::new("setpriv");
    clean_env(&mut serve)
        .args([
            "--reuid=latchkey",
            "--regid=latchkey",
            "--init-groups",
            "--",
            "/usr/bin/latchkey",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("LATCHKEY_DATA_DIR", "/var/lib/latchkey");
    serve_healthcheck_stop(serve, "/usr/bin/latchkey");
    let db = std::fs::metadata("/var/lib/latchkey/latchkey.db").expect("no latchkey.db");
    assert_eq!(db.uid(), user_uid, "latchkey.db owner");
    assert_eq!(db.mode() & 0o777, 0o600, "latchkey.db mode");

    // Removing the package removes its files and keeps the data; so does purging.
    run_ok(
        Command::new("dpkg")
            .args(["-r", "latchkey"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "dpkg",
    );
    assert!(!Path::new("/usr/bin/latchkey").exists());
    assert!(!Path::new(unit).exists());
    assert!(Path::new("/var/lib/latchkey/latchkey.db").exists());
    run_ok(
        Command::new("dpkg")
            .args(["--purge", "latchkey"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "dpkg",
    );
    assert!(
        Path::new("/var/lib/latchkey/latchkey.db").exists(),
        "a purge must not delete the database"
    );
    assert_eq!(package_status(), "", "still known to dpkg after --purge");
    drop(cleanup);
    eprintln!(
        "packaging: .deb built in {:.1} s, installed in {:.1} s",
        built.as_secs_f64(),
        installed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// The static musl build (the container's binary)
// ---------------------------------------------------------------------------------------------

/// Whether an ELF executable names a program interpreter (PT_INTERP): a static (or static-pie)
/// binary does not, and so runs on an image with no libc at all.
fn has_interpreter(elf: &[u8]) -> bool {
    assert!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "not a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// Builds `<arch>-unknown-linux-musl` (debug profile; scripts/test builds it before the tests,
/// so this finds it up to date) and runs it: no dynamic loader, `--version`, serve, health
/// check, SIGTERM.
#[test]
fn musl_static_build_runs() {
    if !needs(&["the musl target", "musl-gcc"]) {
        return;
    }
    let triple = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    // The target directory these tests were built in: <target>/<profile>/latchkey.
    let target_dir = Path::new(bin()).parent().unwrap().parent().unwrap();
    let out = run(
        Command::new(env!("CARGO"))
            .args(["build", "--locked", "--target", &triple, "--target-dir"])
            .arg(target_dir)
            .current_dir(crate_dir()),
        "cargo",
    );
    assert!(
        out.status.success(),
        "the {triple} build failed; it needs `rustup target add {triple}` and musl-gcc \
         (Debian's musl-tools), which scripts/test installs:\n{}",
        text(&out.stderr)
    );
    let musl_bin = target_dir.join(&triple).join("debug/latchkey");
    let elf = std::fs::read(&musl_bin).unwrap_or_else(|e| panic!("{}: {e}", musl_bin.display()));
    assert!(
        !has_interpreter(&elf),
        "{} is dynamically linked",
        musl_bin.display()
    );
    assert!(
        has_interpreter(&std::fs::read(bin()).unwrap()),
        "the ELF check does not see the loader of the (glibc) test binary"
    );
    let musl = musl_bin.to_str().unwrap();
    let out = run_ok(Command::new(musl).arg("--version"), "just built");
    assert_eq!(
        out.trim(),
        format!("latchkey {}", env!("CARGO_PKG_VERSION"))
    );
    let data = temp_dir("musl").join("data");
    let mut serve = Command::new(musl);
    clean_env(&mut serve)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"]);
    serve_healthcheck_stop(serve, musl);
    assert!(data.join("latchkey.db").is_file());
}
