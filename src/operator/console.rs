//! Where the operator tool's lines go, and how it asks before it changes a
//! cluster.

use std::io::{IsTerminal, Write};

use super::error::OpError;

/// Human-readable output (the plan, the check), progress lines, and the
/// confirmation prompt.
///
/// Write errors are ignored: a closed stdout must not stop an operation
/// half way through a reshard.
pub struct Console {
    out: Box<dyn Write + Send>,
    progress: Box<dyn Write + Send>,
    /// Whether a question may be asked on stdin.
    interactive: bool,
}

impl Console {
    /// Lines to stdout, progress to stderr; questions are asked when stdin
    /// is a terminal.
    pub fn stdio() -> Console {
        Console {
            out: Box::new(std::io::stdout()),
            progress: Box::new(std::io::stderr()),
            interactive: std::io::stdin().is_terminal(),
        }
    }

    /// Prints nothing and never asks: an operation needs `yes` set.
    pub fn silent() -> Console {
        Console::new(Box::new(std::io::sink()), Box::new(std::io::sink()))
    }

    /// Lines to `out`, progress to `progress`; never asks.
    pub fn new(out: Box<dyn Write + Send>, progress: Box<dyn Write + Send>) -> Console {
        Console {
            out,
            progress,
            interactive: false,
        }
    }

    /// One line of output.
    pub fn line(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// One progress line (stderr for the command line).
    pub fn progress(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.progress, "{text}");
        let _ = self.progress.flush();
    }

    /// Returns when the plan is accepted: at once with `yes`, else after the
    /// operator types `yes` at `prompt`.
    ///
    /// # Errors
    /// [`OpError::NotConfirmed`] when confirmation is needed and stdin is not
    /// a terminal (a script must pass `--yes` rather than hang);
    /// [`OpError::Aborted`] for any answer but `yes`.
    pub async fn confirm(&mut self, prompt: &str, yes: bool) -> Result<(), OpError> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(OpError::NotConfirmed(
                "confirmation needed, but stdin is not a terminal: pass --yes to accept the plan"
                    .to_string(),
            ));
        }
        let _ = write!(self.out, "{prompt} ");
        let _ = self.out.flush();
        let answer = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        match answer {
            Ok(Ok(line)) if line.trim() == "yes" => Ok(()),
            _ => Err(OpError::Aborted),
        }
    }
}
