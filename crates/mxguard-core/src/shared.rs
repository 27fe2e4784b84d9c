//! A value that readers use while a reload may replace it: readers take a
//! cheap `Arc` snapshot; SIGHUP swaps in a new one without stopping them.

use std::sync::{Arc, RwLock};

pub struct Shared<T>(RwLock<Arc<T>>);

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(RwLock::new(Arc::new(value)))
    }

    pub fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn replace(&self, value: T) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_survive_a_replace() {
        let s = Shared::new(1);
        let old = s.get();
        s.replace(2);
        assert_eq!((*old, *s.get()), (1, 2));
    }
}
