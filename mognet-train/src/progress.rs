//! Progress of a long pass (an epoch's batches, a validation): a bar on stderr when stderr is a
//! terminal and the `cli` feature is on; otherwise nothing is drawn, and the trainer's log
//! lines show that the run is alive. The library thus needs no terminal crate; the command
//! line brings `indicatif`.

/// A counter of done items with a status message, drawn as a bar where that is possible.
pub struct Progress {
    #[cfg(feature = "cli")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A pass of `len` items, labelled `prefix`.
    pub fn new(len: u64, prefix: String) -> Self {
        #[cfg(not(feature = "cli"))]
        let _ = (len, prefix);
        Progress {
            #[cfg(feature = "cli")]
            bar: terminal_bar(len, prefix),
        }
    }

    /// Whether nothing is drawn (no terminal, or no `cli` feature).
    pub fn is_hidden(&self) -> bool {
        #[cfg(feature = "cli")]
        return self.bar.is_hidden();
        #[cfg(not(feature = "cli"))]
        true
    }

    /// Items done so far (a resumed pass starts past zero).
    pub fn set_position(&self, done: u64) {
        #[cfg(feature = "cli")]
        self.bar.set_position(done);
        #[cfg(not(feature = "cli"))]
        let _ = done;
    }

    /// `items` more are done.
    pub fn inc(&self, items: u64) {
        #[cfg(feature = "cli")]
        self.bar.inc(items);
        #[cfg(not(feature = "cli"))]
        let _ = items;
    }

    /// The status shown beside the bar.
    pub fn set_message(&self, message: String) {
        #[cfg(feature = "cli")]
        self.bar.set_message(message);
        #[cfg(not(feature = "cli"))]
        let _ = message;
    }

    /// Runs `f` (which prints a line) with the bar taken off the screen.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "cli")]
        return self.bar.suspend(f);
        #[cfg(not(feature = "cli"))]
        f()
    }

    /// The pass ended: the bar is cleared.
    pub fn finish(&self) {
        #[cfg(feature = "cli")]
        self.bar.finish_and_clear();
    }

    /// The pass failed: the bar stays where it stopped.
    pub fn abandon(&self) {
        #[cfg(feature = "cli")]
        self.bar.abandon();
    }
}

#[cfg(feature = "cli")]
fn terminal_bar(len: u64, prefix: String) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal as _;
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_runs_the_line_and_returns_its_value() {
        let p = Progress::new(10, "epoch 1/2".into());
        p.set_position(3);
        p.inc(2);
        p.set_message("loss 0.5".into());
        let mut printed = Vec::new();
        p.suspend(|| printed.push("a line"));
        assert_eq!(printed, ["a line"]);
        assert_eq!(p.suspend(|| 7), 7);
        p.finish();
    }
}
