//! Work spread over every core the process may use, with results that do not depend on how
//! many there are or how the work was scheduled.

/// Runs `f(i, &mut items[i])` for every item on all cores and hands the items back in their
/// order. Workers take the next item from a shared queue, so a worker left with slow items does
/// not hold the others idle; what an item ends up holding depends on `f` alone, never on the
/// number of threads or their timing. A panic in `f` (a bug) is raised again here.
pub(crate) fn parallel<S: Send>(items: Vec<S>, f: impl Fn(usize, &mut S) + Sync) -> Vec<S> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if workers <= 1 {
        let mut items = items;
        for (i, item) in items.iter_mut().enumerate() {
            f(i, item);
        }
        return items;
    }
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let mut done: Vec<(usize, S)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((i, mut item)) = next else { break };
                        f(i, &mut item);
                        done.push((i, item));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, item)| item).collect()
}

/// `f(0), …, f(n − 1)` on all cores ([`parallel`]), in that order.
pub(crate) fn parallel_map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let slots = parallel((0..n).map(|_| None).collect(), |i, slot| *slot = Some(f(i)));
    slots.into_iter().map(|r| r.expect("parallel runs every item")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_hands_every_item_back_in_order() {
        assert_eq!(parallel_map(1000, |i| i * i), (0..1000).map(|i| i * i).collect::<Vec<_>>());
        assert!(parallel_map(0, |i| i).is_empty());
        assert_eq!(parallel(vec![1, 2, 3], |i, x| *x += i), vec![1, 3, 5]);
    }
}
