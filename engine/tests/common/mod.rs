//! Helpers the engine's test binaries share: listing a data directory's
//! files, copying it as a crash image, and a word query.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use actlog_engine::{Log, Order, Query, Selection};

/// The files in `dir` with extension `ext` (`log`, `idx`, `aidx`), sorted:
/// segments sort by base id.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the data directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Copies every file of `from` but the lock into `to`: what a crash at this
/// moment would leave on disk (the files as they are, no clean close).
pub fn copy_crash_image(from: &Path, to: &Path) {
    for e in fs::read_dir(from).expect("list the data directory") {
        let p = e.expect("directory entry").path();
        if let Some(name) = p.file_name().filter(|n| *n != "LOCK") {
            fs::copy(&p, to.join(name)).expect("copy a file of the image");
        }
    }
}

/// The ids of the newest (at most 5) records holding `word`.
pub fn word_ids(log: &Log, word: &str) -> Vec<u64> {
    log.query(&Query {
        selection: Selection::default().with_words(word),
        order: Order::Desc,
        limit: 5,
        cursor: None,
    })
    .expect("word query")
    .items
    .iter()
    .map(|r| r.id)
    .collect()
}

/// Runs `fut` to completion on this thread, parking between polls: the
/// smallest executor, enough to drive [`Log::append_async`] from tests.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Runs every future of `futs` to completion on this thread, polling each
/// still pending one whenever any wakes (many tasks, one executor thread);
/// returns their outputs in order.
pub fn block_on_all<F>(futs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Unpin,
    F::Output: Unpin,
{
    use std::pin::Pin;
    use std::task::{Context, Poll};

    struct All<F: std::future::Future>(Vec<(F, Option<F::Output>)>);
    impl<F> std::future::Future for All<F>
    where
        F: std::future::Future + Unpin,
        F::Output: Unpin,
    {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut pending = false;
            for (f, out) in self.0.iter_mut() {
                if out.is_none() {
                    match Pin::new(f).poll(cx) {
                        Poll::Ready(v) => *out = Some(v),
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }
    // `All` is Unpin because `F` is; it is pinned on this stack by block_on.
    let mut all = All(futs.into_iter().map(|f| (f, None)).collect());
    block_on(&mut all);
    all.0
        .into_iter()
        .map(|(_, out)| out.expect("every future finished"))
        .collect()
}
