// kizuki_wait.h on Linux futexes (FUTEX_WAIT / FUTEX_WAKE on the epoch word, process-private).
#include "kizuki_wait.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

uint32_t kizuki_event_prepare(kizuki_event *event) {
    // The key is read before announcing: a notify after the announcement bumps the epoch past it.
    uint32_t key = __atomic_load_n(&event->epoch, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&event->waiters, 1, __ATOMIC_SEQ_CST);
    return key;
}

void kizuki_event_cancel(kizuki_event *event) { __atomic_fetch_sub(&event->waiters, 1, __ATOMIC_SEQ_CST); }

void kizuki_event_wait(kizuki_event *event, uint32_t key) {
    // Returns at once when the epoch is no longer `key` (a notify came after prepare).
    syscall(SYS_futex, &event->epoch, FUTEX_WAIT_PRIVATE, key, NULL, NULL, 0);
    __atomic_fetch_sub(&event->waiters, 1, __ATOMIC_SEQ_CST);
}

void kizuki_event_notify_all(kizuki_event *event) {
    if (__atomic_load_n(&event->waiters, __ATOMIC_SEQ_CST) == 0) return;
    __atomic_fetch_add(&event->epoch, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &event->epoch, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void kizuki_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}
