//! Server-side rate limits as the real services count them: calls in a sliding window
//! and calls at once, per tenant or account.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most `max` calls in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub per: Duration,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Window `index` of the limiter is full; it frees a slot after `retry_after`.
    Window { index: usize, retry_after: Duration },
    /// Too many calls at once.
    Concurrency,
}

/// What a counted call sees of each window after it was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Remaining calls in each window, in the limiter's order.
    pub remaining: Vec<usize>,
}

#[derive(Debug)]
pub struct Limiter {
    windows: Vec<Window>,
    concurrency: usize,
    calls: Mutex<Vec<VecDeque<Instant>>>,
    in_flight: Arc<AtomicUsize>,
    refused: AtomicUsize,
    admitted: AtomicUsize,
}

/// Held for the length of an admitted call.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limiter {
    pub fn new(windows: Vec<Window>, concurrency: usize) -> Self {
        let calls = windows.iter().map(|_| VecDeque::new()).collect();
        Self {
            windows,
            concurrency: concurrency.max(1),
            calls: Mutex::new(calls),
            in_flight: Arc::new(AtomicUsize::new(0)),
            refused: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
        }
    }

    /// Admits a call, or says why not. A refused call is not counted in any window.
    pub fn admit(&self) -> Result<(Admitted, InFlight), Refusal> {
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        for (index, (window, log)) in self.windows.iter().zip(calls.iter_mut()).enumerate() {
            while log
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window.per)
            {
                log.pop_front();
            }
            if log.len() >= window.max {
                let oldest = log.front().copied().unwrap_or(now);
                let retry_after = window.per.saturating_sub(now.duration_since(oldest));
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::Window { index, retry_after });
            }
        }
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst);
        if in_flight >= self.concurrency {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Concurrency);
        }
        let mut remaining = Vec::with_capacity(self.windows.len());
        for (window, log) in self.windows.iter().zip(calls.iter_mut()) {
            log.push_back(now);
            remaining.push(window.max - log.len());
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok((Admitted { remaining }, InFlight(self.in_flight.clone())))
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Calls refused so far (429s this limiter caused).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_window_and_frees_after_it() {
        let limiter = Limiter::new(
            vec![Window {
                max: 2,
                per: Duration::from_millis(50),
            }],
            10,
        );
        let a = limiter.admit().expect("first");
        let b = limiter.admit().expect("second");
        assert_eq!(a.0.remaining, vec![1]);
        assert_eq!(b.0.remaining, vec![0]);
        assert!(matches!(
            limiter.admit(),
            Err(Refusal::Window { index: 0, .. })
        ));
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.admit().is_ok());
        assert_eq!(limiter.refused(), 1);
    }

    #[test]
    fn refuses_past_the_concurrency() {
        let limiter = Limiter::new(vec![], 1);
        let held = limiter.admit().expect("first");
        assert_eq!(limiter.admit().unwrap_err(), Refusal::Concurrency);
        drop(held);
        assert!(limiter.admit().is_ok());
    }
}
