//! Frame sampling: keep frames at the configured rate, whatever rate the source delivers.
//!
//! Recordings are sampled on their own timeline (frame index / frame rate), so a 25 fps file
//! sampled at 5 fps keeps every fifth frame however fast it is read. Live sources are sampled on
//! the wall clock. If the source falls behind by more than one interval the schedule restarts from
//! now rather than releasing a burst of frames to catch up.

pub struct Sampler {
    interval: f64,
    next_due: Option<f64>,
}

impl Sampler {
    pub fn new(fps: f64) -> Sampler {
        Sampler {
            interval: 1.0 / fps,
            next_due: None,
        }
    }

    /// Whether to keep a frame captured at `t` seconds (any monotonic timeline).
    pub fn keep(&mut self, t: f64) -> bool {
        // Half a millisecond of slack absorbs rounding in frame timestamps.
        let due = self.next_due.unwrap_or(t);
        if t + 0.0005 < due {
            return false;
        }
        let next = due + self.interval;
        self.next_due = Some(if t >= next { t + self.interval } else { next });
        true
    }

    /// Forget the timeline (a file starts again from zero).
    pub fn reset(&mut self) {
        self.next_due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_25fps_recording_sampled_at_5fps_keeps_every_fifth_frame() {
        let mut s = Sampler::new(5.0);
        let kept: Vec<u32> = (0..25).filter(|i| s.keep(*i as f64 / 25.0)).collect();
        assert_eq!(kept, vec![0, 5, 10, 15, 20]);
    }

    #[test]
    fn a_source_slower_than_the_rate_keeps_everything() {
        let mut s = Sampler::new(10.0);
        assert!((0..5).all(|i| s.keep(i as f64 * 0.5)));
    }

    #[test]
    fn after_a_stall_there_is_no_burst() {
        let mut s = Sampler::new(5.0);
        assert!(s.keep(0.0));
        assert!(s.keep(3.0));
        assert!(!s.keep(3.05));
        assert!(s.keep(3.2));
    }
}
