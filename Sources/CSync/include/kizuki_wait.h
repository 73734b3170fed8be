// Blocking for the engine's thread pool: an event count on a Linux futex, and the CPU's spin hint.
#ifndef KIZUKI_WAIT_H
#define KIZUKI_WAIT_H

#include <stdint.h>

/// Threads wait for a condition kept elsewhere (the pool's atomics); whoever changes the condition
/// calls `kizuki_event_notify_all`. Waiting is: key = prepare, re-check the condition, then cancel
/// (it holds) or wait(key). A notify between prepare and wait makes the wait return at once, so no
/// wake-up is lost; waits may also return spuriously, so callers re-check in a loop.
/// The fields are accessed only through the functions below (atomically); zero-initialise the struct.
typedef struct {
    uint32_t epoch;    // bumped by each notify that finds waiters; the futex word
    uint32_t waiters;  // threads between prepare and the end of their wait
} kizuki_event;

uint32_t kizuki_event_prepare(kizuki_event *event);
void kizuki_event_cancel(kizuki_event *event);
void kizuki_event_wait(kizuki_event *event, uint32_t key);
/// Wakes every waiter; costs one atomic load when there is none. Sequentially consistent with
/// prepare, so the condition must be changed with a sequentially consistent store before.
void kizuki_event_notify_all(kizuki_event *event);

/// The spin-wait hint (x86 PAUSE, ARM YIELD): lets the sibling hyperthread run and saves power.
void kizuki_cpu_relax(void);

#endif
