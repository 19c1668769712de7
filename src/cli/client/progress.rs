//! Progress lines on stderr for work that can take more than a second: a bench run, a
//! backup or restore, an object's upload or download. Drawn only when stderr is a terminal,
//! so scripts and tests see none of it.

use std::convert::Infallible;
use std::io::{IsTerminal, Write as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

/// How often a progress line is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// A count of what is done (messages of a bench run, bytes of a transfer), shared by the
/// tasks doing it, drawn as a progress line on stderr when stderr is a terminal.
#[derive(Clone)]
pub struct Progress {
    /// Shared by every client; relaxed ordering, since it is only displayed.
    pub done: Arc<AtomicU64>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn add(&self, count: u64) {
        self.done.fetch_add(count, Ordering::Relaxed);
    }

    /// Redraws the line until dropped (the caller races this against the run); never
    /// returns when stderr is not a terminal, so it costs nothing then.
    pub async fn draw(&self, label: &str, total: u64) -> Infallible {
        if !std::io::stderr().is_terminal() {
            return std::future::pending().await;
        }
        let started = Instant::now();
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            ticker.tick().await;
            let done = self.done.load(Ordering::Relaxed);
            let elapsed = started.elapsed().as_secs_f64();
            let mut err = std::io::stderr().lock();
            // A total of 0 is an unknown one (a transfer from stdin): the count alone.
            let _ = match total {
                0 => write!(err, "\r\x1b[K{label}: {done} {elapsed:.1}s"),
                _ => {
                    let percent = done as f64 * 100.0 / total as f64;
                    write!(
                        err,
                        "\r\x1b[K{label}: {done}/{total} ({percent:.0}%) {elapsed:.1}s"
                    )
                }
            };
            let _ = err.flush();
        }
    }

    /// Clears the line, if one was drawn.
    pub fn clear() {
        if std::io::stderr().is_terminal() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

/// A reader that counts the bytes read through it into a [`Progress`].
pub struct Counted<R> {
    inner: R,
    progress: Progress,
}

impl<R> Counted<R> {
    pub fn new(inner: R, progress: Progress) -> Self {
        Self { inner, progress }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.progress.add((buf.filled().len() - before) as u64);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_counted_reader_adds_what_it_reads() {
        let progress = Progress::new();
        let mut reader = Counted::new(&b"twelve bytes"[..], progress.clone());
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.expect("read");
        assert_eq!(out, b"twelve bytes");
        assert_eq!(progress.done.load(Ordering::Relaxed), 12);
    }
}
