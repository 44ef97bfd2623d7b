//! jq programs run in worker processes (`alertflow __jq-worker`), not in the server: jaq has no
//! fuel, so `def f: 1 + f; f` overflows the stack (which aborts a process) and
//! `last(range(infinite))` never returns (and a thread cannot be stopped). A worker is killed
//! when its step times out, dies alone when a program overflows its stack or its memory limit,
//! and has an empty environment. Workers are kept and reused: a program on one alert costs a
//! pipe round trip, not a process start.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

/// The hidden subcommand `main` hands to [`worker_main`].
pub const WORKER_ARG: &str = "__jq-worker";

/// A worker's address space: room for large alert bodies, not for a runaway program.
const WORKER_MEMORY: u64 = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Request<'a> {
    program: Cow<'a, str>,
    input: Cow<'a, Value>,
}

/// The program's result, or its error.
type Answer = Result<Value, String>;

pub struct Sandbox {
    /// The alertflow binary, which runs workers with [`WORKER_ARG`].
    exe: PathBuf,
    /// At most this many programs run at once, each in its own worker.
    slots: Semaphore,
    idle: Mutex<Vec<Worker>>,
}

struct Worker {
    // Dropping the child kills it (kill_on_drop): a step that times out mid-program drops it.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sandbox {
    pub fn new(exe: PathBuf) -> Sandbox {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        Sandbox {
            exe,
            slots: Semaphore::new(slots),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `program` on `input`. Cancel-safe: dropping the future kills the worker.
    pub async fn run(&self, program: &str, input: &Value) -> Result<Value, String> {
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let mut line = serde_json::to_vec(&Request {
            program: program.into(),
            input: Cow::Borrowed(input),
        })
        .map_err(|e| e.to_string())?;
        line.push(b'\n');
        let mut answer = String::new();
        let exchanged = async {
            worker.stdin.write_all(&line).await?;
            worker.stdin.flush().await?;
            worker.stdout.read_line(&mut answer).await
        }
        .await;
        if !matches!(exchanged, Ok(n) if n > 0) {
            // The worker died mid-program (the worker is dropped here, and with it the child).
            return Err(
                "jq: the program was stopped: it recursed too deep or used too much memory".into(),
            );
        }
        let answer: Answer = serde_json::from_str(&answer).map_err(|e| format!("jq: {e}"))?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(worker);
        answer
    }

    fn spawn(&self) -> Result<Worker, String> {
        let mut child = Command::new(&self.exe)
            .arg(WORKER_ARG)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // A stack overflow's message would only repeat what the step's error says.
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("jq: cannot start a worker ({}): {e}", self.exe.display()))?;
        let stdin = child.stdin.take().ok_or("jq: worker without stdin")?;
        let stdout = child.stdout.take().ok_or("jq: worker without stdout")?;
        Ok(Worker {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

/// The worker: one request per line on stdin, one answer per line on stdout, until stdin closes.
pub fn worker_main() -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: WORKER_MEMORY,
        rlim_max: WORKER_MEMORY,
    };
    // SAFETY: setrlimit only reads the struct passed by reference.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    std::thread::Builder::new()
        .stack_size(super::jq::STACK)
        .spawn(serve)?
        .join()
        .unwrap_or(Ok(()))
}

fn serve() -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => super::jq::run_jq(&req.program, req.input.into_owned()),
            Err(e) => Err(format!("jq: bad request to the worker: {e}")),
        };
        serde_json::to_writer(&mut stdout, &answer)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}
