//! The hand-over between a camera thread and its publisher: a small bounded queue that drops the
//! **oldest** frame when full. When the bus pushes back, what matters is the newest view of the
//! scene; queueing without bound would only add latency and memory until the process dies.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

pub struct DropOldest<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    ready: Notify,
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> DropOldest<T> {
        DropOldest {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            ready: Notify::new(),
        }
    }

    /// Add an item; returns the one evicted to make room, if any.
    pub fn push(&self, item: T) -> Option<T> {
        let evicted = {
            let mut items = self.items.lock().unwrap();
            let evicted = if items.len() >= self.capacity {
                items.pop_front()
            } else {
                None
            };
            items.push_back(item);
            evicted
        };
        self.ready.notify_one();
        evicted
    }

    /// Wait for the oldest item.
    pub async fn pop(&self) -> T {
        loop {
            if let Some(item) = self.items.lock().unwrap().pop_front() {
                return item;
            }
            self.ready.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn when_full_the_oldest_goes() {
        let q = DropOldest::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.pop().await, 2);
        assert_eq!(q.pop().await, 3);
        assert!(q.is_empty());
    }
}
