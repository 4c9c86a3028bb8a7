//! Runs the `msrp` binary once with a time bound, killing it if the test fails first.
//! Shared by the CLI integration tests that only need the exit status and output.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test fails before it exits.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `msrp` with `args`, bounded to 30 s.
pub fn msrp(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_msrp"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msrp");
    let mut g = Guard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = g.0.as_mut().unwrap();
        if c.try_wait().unwrap().is_some() {
            return g.0.take().unwrap().wait_with_output().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "msrp {args:?} did not finish in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
