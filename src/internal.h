/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private declarations shared by the library's source files. */
#ifndef PM_INTERNAL_H
#define PM_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pagemap/pagemap.h>

#define PM_HIDDEN __attribute__((visibility("hidden")))

/* ---- errors and options (opts.c) ---- */

/* Set errno for a negative return and pass the value through. */
static inline long pm__ret(long r)
{
	if (r < 0)
		errno = (int)-r;
	return r;
}

/* 0 if @opts is NULL or a well-formed options struct of which the library
 * knows the first @known bytes; -EINVAL otherwise. */
PM_HIDDEN int pm__opts_check(const void *opts, size_t known);
/* An output struct's size field @size: 0 if a multiple of 8 holding at
 * least the first @min bytes, else -EINVAL. */
PM_HIDDEN int pm__out_size_check(uint64_t size, size_t min);
/* Copy the library's output struct @src (@len bytes, size field first) to
 * the caller's @dst: the prefix the caller's size says it knows, and its
 * size field as the caller set it. */
PM_HIDDEN void pm__out_copy(void *dst, const void *src, size_t len);
/* Whether [start, end) is a non-empty, page-aligned range of user space. */
PM_HIDDEN bool pm__range_ok(uint64_t start, uint64_t end);

/* A field of a caller's options struct, or @dflt when the caller's struct
 * is too old to have it (or opts is NULL). */
#define PM__OPT(o, type, field, dflt)                                              \
	(((o) != NULL && offsetof(type, field) + sizeof((o)->field) <= (o)->size) \
		 ? (o)->field                                                      \
		 : (dflt))

/* ---- system calls (sys.c); a table so tests can inject faults ---- */

struct pm__sysops {
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	int (*ioctl)(int fd, unsigned long req, void *arg);
};
PM_HIDDEN extern struct pm__sysops pm__sys;
/* CLOCK_MONOTONIC in ns: the batch's settle windows, the guard's THP sum age,
 * the soft-dirty tracker's timings. */
PM_HIDDEN uint64_t pm__mono_ns(void);

/* The value of the system call expression @call (-1 and errno on failure),
 * evaluated again while it fails with EINTR; a failure is -errno. The one
 * EINTR rule of the library. */
#define PM__NOINTR(call)                                      \
	__extension__({                                       \
		long pm__r_;                                  \
		do                                            \
			pm__r_ = (long)(call);                \
		while (pm__r_ < 0 && errno == EINTR);         \
		pm__r_ < 0 ? (long)-errno : pm__r_;           \
	})

/* Read a small procfs file whole into buf (NUL-terminated); -ESRCH if
 * empty. @one_record: the file is a single seq_file record (stat, statm,
 * status), generated whole, so a short read that ends the line has all of
 * it. Otherwise (vmstat) it is read to EOF. */
PM_HIDDEN int pm__slurp(int fd, char *buf, size_t cap, bool one_record);
/* Read exactly @n bytes at @off, retrying EINTR and short reads; EOF
 * before that: -ESRCH. Not for a handle's pagemap, whose EOF is not
 * always an exit: pm__pagemap_pread. */
PM_HIDDEN int pm__pread_full(int fd, void *buf, size_t n, uint64_t off, uint64_t *nreads);
/* The same from the handle's pagemap, where EOF is told apart: the target
 * exited or exec'd (-ESRCH), or the rest lies above the top of its address
 * space and reads as not mapped. */
PM_HIDDEN int pm__pagemap_pread(struct pm_handle *h, void *buf, size_t n, uint64_t off,
				uint64_t *nreads);
/* A pagemap read through @h answered EOF with @len bytes at @rest still
 * wanted: 0 with them zeroed (not mapped), or -ESRCH. */
PM_HIDDEN int pm__pagemap_eof(struct pm_handle *h, void *rest, size_t len);
/* ioctl with EINTR retried; returns the result or -errno. */
PM_HIDDEN int pm__ioctl(int fd, unsigned long req, void *arg);
PM_HIDDEN int pm__pidfd_open(pid_t pid);

/* ---- kernel facts: probe.h ---- */
#include "probe.h"

/* ---- handles (handle.c) ---- */

struct pm_handle {
	pid_t pid;
	bool self;
	bool caller_pid; /* pid is a number in the caller's pid namespace */
	uint64_t open_flags;
	_Atomic uint64_t fork_gen; /* self handles: pm__fork_gen the fds were opened in */
	pthread_mutex_t lock;      /* serialises re-opening after fork */
	int pidfd, dirfd, pagemap_fd, stat_fd;
	/* the VMA source, the guard's counters and the VMA cache's stamp:
	 * opened on first use (pm__handle_fd) where the kernel has
	 * PAGEMAP_SCAN and its retry fix, since many calls need none of them
	 * (pm_usage's Rss, pm-dump --all) */
	_Atomic int maps_fd, statm_fd, status_fd;
	pthread_mutex_t maps_lock; /* the maps text is read at file positions; vsnap */
	struct pm__vsnap *vsnap;   /* the VMA list kept across calls (vma-cache.c) */
	_Atomic uint64_t emu_pages; /* emulated scans: 16 x pages per region last seen (a plan) */
	uint64_t mm_ident[10];     /* other processes: the address space opened */
	_Atomic int stops;         /* stops of every thread in place (stop.c) */
};

/* Make the handle's fds current (re-open a self handle in a forked child).
 * 0 or -errno. Every public entry point on a handle calls this first. */
PM_HIDDEN int pm__handle_ready(struct pm_handle *h);
/* The fd in @slot (h->maps_fd, h->statm_fd, h->status_fd), opened as @name under the
 * process's directory if it is not yet: the fd, or -errno (-ESRCH: gone). */
PM_HIDDEN int pm__handle_fd(struct pm_handle *h, _Atomic int *slot, const char *name);
/* Whether the address space the handle's pagemap was opened on is gone
 * (no task uses it: exit, or exec without a CLONE_VM relative). */
PM_HIDDEN bool pm__handle_mm_gone(const struct pm_handle *h);
/* After the kernel answered: 0 if the handle's process still exists, runs
 * and has the address space its fds were opened on; -ESRCH otherwise. No
 * data read through a handle is returned before this said 0. */
PM_HIDDEN int pm__handle_check(struct pm_handle *h);
/* The same from the text of /proc/PID/stat read after the kernel answered
 * (a guard token's): 0, -errno, or 1 when the text is not a stat line. */
PM_HIDDEN int pm__handle_check_stat(struct pm_handle *h, const char *stat);

/* ---- VMAs (vma.c, the list: vma-list.c, its sources: vma-query.c, vma-maps.c) ---- */

struct pm_vma_list {
	size_t count, cap;
	struct pm_vma *v;
	char *names;      /* arena of NUL-terminated names */
	size_t names_len, names_cap;
	size_t *name_off; /* per VMA offset into names (resolved on finish) */
	size_t off_cap;
};

/* Room for @count VMAs and @names_len bytes of names before adding. */
PM_HIDDEN int pm__list_reserve(struct pm_vma_list *l, size_t count, size_t names_len);
PM_HIDDEN int pm__list_add(struct pm_vma_list *l, const struct pm_vma *v, const char *name,
			   size_t name_len);
/* Sort, clip overlaps left by a non-atomic text read, resolve names. */
PM_HIDDEN int pm__list_finish(struct pm_vma_list *l);
PM_HIDDEN void pm__list_release(struct pm_vma_list *l);
/* The index of the first VMA of a finished list that ends above @addr
 * (count if none). */
PM_HIDDEN size_t pm__list_find(const struct pm_vma_list *l, uint64_t addr);

/* What the kernel's view of a present page depends on in its VMA (the
 * emulated scan, usage): */
#define PM__VKIND_ANON_PRIVATE 1 /* no inode, not shared; unnamed, [heap],
				  * [stack*] or [anon:*]: bit 61 there only
				  * ever comes from the huge zero page */
#define PM__VKIND_PFNMAP 2       /* the vDSO data pages ("[vvar]",
				  * "[vvar_vclock]"): VM_PFNMAP, skipped */
PM_HIDDEN unsigned pm__vma_kind(const struct pm_vma *v);

/* Parse /proc/PID/maps text into @l; VMAs at or above @user_top are
 * dropped (the [vsyscall] gate area). 0, -EIO for malformed text, -ENOMEM. */
PM_HIDDEN int pm__maps_parse(const char *buf, size_t len, uint64_t user_top,
			     struct pm_vma_list *l);
/* The whole list from the handle's maps text: read, parsed, finished. */
PM_HIDDEN int pm__maps_list(struct pm_handle *h, struct pm_vma_list *l);
/* The VMA covering @addr or the next one: 1, 0 (none), -errno (-ENOTTY: no
 * PROCMAP_QUERY, or with @name a path of PATH_MAX or more, which only the
 * maps text lists). With @name, v->name points into *name (PATH_MAX bytes,
 * allocated at the first call; the caller frees it); without, "". */
PM_HIDDEN int pm__query_vma(struct pm_handle *h, uint64_t addr, struct pm_vma *v, char **name,
			    size_t *name_cap);
/* Whether this handle lists VMAs with PROCMAP_QUERY. */
PM_HIDDEN bool pm__use_query(const struct pm_handle *h);

/* The VMA list kept on a handle across calls (vma-cache.c, which states
 * what each use may take from it): immutable, reference counted. */
struct pm__vsnap;
/* The handle's list with a reference, or NULL. */
PM_HIDDEN struct pm__vsnap *pm__vsnap_cached(struct pm_handle *h);
/* Read the list afresh, make it the handle's; *out with a reference. */
PM_HIDDEN int pm__vsnap_read(struct pm_handle *h, struct pm__vsnap **out);
/* 1 if the target's counters are those stamped on @s, 0 if not, -errno;
 * *ident: pm__handle_check_stat() of the stat text it read (1: none). */
PM_HIDDEN int pm__vsnap_current(struct pm_handle *h, const struct pm__vsnap *s, int *ident);
PM_HIDDEN const struct pm_vma_list *pm__vsnap_list(const struct pm__vsnap *s);
/* Per VMA of the list: where the VMAs of its pm__vma_kind() that follow
 * it without a gap end. Made once per list, on first use; NULL without
 * memory. */
PM_HIDDEN const uint64_t *pm__vsnap_kind_ends(struct pm__vsnap *s);
PM_HIDDEN void pm__vsnap_put(struct pm__vsnap *s);
/* pm_close: the handle's reference. */
PM_HIDDEN void pm__vsnap_drop(struct pm_handle *h);

/* A cursor over VMAs for one call (vma-cursor.c). Facts (what is a gap,
 * a VMA's kind) come from PROCMAP_QUERY, remembered from the last answer
 * (an address between the last query and the end of the VMA it returned
 * gets the same answer without a syscall), or from a list read in this
 * call; plans from the handle's list, however old. */
struct pm__vcursor {
	struct pm_handle *h;
	bool use_query;
	struct pm__vsnap *snap; /* the handle's list when the call began, or read since */
	bool fresh;             /* snap read in this call: its gaps are facts */
	bool checked;           /* snap's counters matched in this call: its kinds are facts */
	size_t idx;             /* where in snap the last lookup ended */
	unsigned queries;       /* PROCMAP_QUERYs issued in this call */
	char *name;
	size_t name_cap;
	bool names;             /* some lookup wanted names: every query asks for them */
	bool have_last;
	int last_r;             /* the last query's result: 1 or 0 (no VMA) */
	uint64_t last_addr;     /* ... for this address */
	struct pm_vma last;     /* ... and the VMA, when last_r is 1 */
	/* the identity check of the last stat text read in this call (a
	 * kept list's counters, a guard token), when nothing the call
	 * returns was read after it: the call's own check then */
	bool ident_fresh;
	int ident;
	unsigned gen; /* bumped when the facts may have changed: a refresh, a forget */
};
PM_HIDDEN void pm__vcursor_init(struct pm__vcursor *c, struct pm_handle *h);
PM_HIDDEN void pm__vcursor_fini(struct pm__vcursor *c);
/* Facts: the VMA covering @addr or the next one: 1, 0 (none), or -errno.
 * With @want_name, v->name is valid until the next call. */
PM_HIDDEN int pm__vcursor_next(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v,
			       bool want_name);
/* The named VMA covering @addr, a page the caller saw present, whose kind
 * it needs: 1, 0 (none covers it), or -errno. Trusts the handle's list
 * once its counters matched in this call. */
PM_HIDDEN int pm__vcursor_kind(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v);
/* After pm__vcursor_kind() answered @v: where the VMAs of v's kind that
 * follow it without a gap end, by the same list (v->end when it answered
 * from PROCMAP_QUERY). A caller that needs only the kind of the VMA under
 * each page steps over a run of them at once, while c->gen stays what it
 * was at the lookup: past the VMA itself the run is the list's, which a
 * refresh or a forget may have replaced. */
PM_HIDDEN uint64_t pm__vcursor_kind_end(struct pm__vcursor *c, const struct pm_vma *v);
/* A plan: the VMA covering @addr or the next one by the handle's list
 * (stale or not), else as pm__vcursor_next. Never a fact. */
PM_HIDDEN int pm__vcursor_plan(struct pm__vcursor *c, uint64_t addr, struct pm_vma *v);
/* A plan, with the handle's list: where a read that reaches @to, the end
 * of a VMA, stops: at the first gap of @gap bytes or more after it (the
 * gap up to @end counts when no VMA starts before @end), else at @end. */
PM_HIDDEN uint64_t pm__vcursor_run(struct pm__vcursor *c, uint64_t to, uint64_t end,
				   uint64_t gap);
/* Read the list afresh (its gaps and kinds are facts in this call). */
PM_HIDDEN int pm__vcursor_refresh(struct pm__vcursor *c);
/* Ask the kernel again for facts (the address space may have changed). */
PM_HIDDEN void pm__vcursor_forget(struct pm__vcursor *c);
/* pm__handle_check() for what the call read: the last stat text's answer
 * when it came after everything read, else a check of its own. */
PM_HIDDEN int pm__vcursor_check(struct pm__vcursor *c);

/* ---- the consistency guard (guard.c) ---- */

/* Counters that move whenever the target's page tables can have changed
 * in a way that shifts a read: faults, RSS, VM size, page tables, and the
 * system-wide THP events. */
struct pm__token {
	uint64_t v[6];
	int ident;   /* pm__handle_check_stat() of the stat text read for v[0] */
	bool asleep; /* that text showed one thread, not running */
	uint64_t threads; /* and this many threads */
};

struct pm__guard {
	bool active;          /* reads must be certified */
	bool best_effort;
	bool pieces;          /* a certifying pass: reads split at PMD boundaries */
	bool tripped;         /* start with certifying passes */
	bool unstable;        /* some pieces never certified (best effort) */
	uint64_t max_retries;
	uint64_t retries;     /* certifying passes */
	uint64_t kernel_reads;
	struct pm__token last; /* the target's counters at the last bracket */
	int ident;            /* the identity check of the last token taken... */
	bool ident_fresh;     /* ...when no data was read or filled in after it */
	size_t bracket;       /* pieces per bracket in this pass */
	size_t in_bracket;
	/* the ranges not certified yet, sorted, and those a pass leaves */
	struct pm_range *todo, *left, *pend; /* pend: read in the open bracket */
	size_t ntodo, nleft, npend, cap_todo, cap_left, cap_pend;
};
/* Internal pm_read flags, for pm_batch, which certifies many reads of one
 * handle with one token pair: UNGUARDED, read without the guard (the batch
 * brackets it); TRIPPED, the batch's token moved: certify piece by piece
 * straight away. */
#define PM__READ_UNGUARDED (1ULL << 62)
#define PM__READ_TRIPPED   (1ULL << 63)
/* The caller checks the handle (pm__handle_check) before it returns
 * anything read (the emulated scan, once per call, not once per window). */
#define PM__READ_UNCHECKED (1ULL << 61)
PM_HIDDEN int pm__guard_init(struct pm__guard *g, uint64_t read_flags, uint64_t max_retries);
PM_HIDDEN void pm__guard_fini(struct pm__guard *g);
/* v[0] faults, v[1..3] size/resident/shared (kB, from status), v[4] VmPTE:
 * the target's own; v[5] the system-wide THP events. */
PM_HIDDEN int pm__token(struct pm_handle *h, struct pm__token *t);
/* A token that opens a bracket: v[5] may be a THP event sum read just
 * before (within a millisecond) rather than now. */
PM_HIDDEN int pm__token_open(struct pm_handle *h, struct pm__token *t);
/* The target's part of a token, v[5] left 0. */
PM_HIDDEN int pm__token_own(struct pm_handle *h, struct pm__token *t);
/* The token that closes a bracket of reads: taken once every page-table
 * change that was in flight during them is counted (see guard.c). 0, 1
 * when that cannot be waited for (the bracket is not certified), -errno. */
PM_HIDDEN int pm__token_after(struct pm_handle *h, struct pm__token *t);
/* The same without v[5] (left 0): a batch reads that once for many
 * closing tokens (pm__batch_settle). */
PM_HIDDEN int pm__token_after_own(struct pm_handle *h, struct pm__token *t);
/* The system-wide part, v[5]: the sum of /proc/vmstat's thp_* events. */
PM_HIDDEN int pm__token_thp(uint64_t *sum);
/* From a /proc/PID[/task/TID]/stat fd: minflt + majflt, and (optional)
 * the start time. */
PM_HIDDEN int pm__stat_fields(int stat_fd, uint64_t *faults, uint64_t *start_time);
/* The same from the text of a stat file read whole. */
PM_HIDDEN int pm__stat_faults(const char *stat, uint64_t *faults);
/* Whether reads issued between two tokens are certified by them: 1, 0. */
PM_HIDDEN bool pm__token_certifies(const struct pm__token *before, const struct pm__token *after);
/* Run @pass (all the kernel reads of one pm_read over [start, end)) under
 * the guard: once when the guard is off or the token did not move; else
 * in certifying passes over the ranges not yet certified, until none is
 * left or the retries are spent. 0, -EAGAIN, or -errno. */
PM_HIDDEN int pm__guarded(struct pm__guard *g, struct pm_handle *h, uint64_t start, uint64_t end,
			  int (*pass)(void *arg, uint64_t from, uint64_t to), void *arg);
/* What a pass does with a span it reads and a gap it fills: read it whole,
 * or (certifying) piece by piece, each piece at most one PMD and bracketed
 * by the target's counters. */
PM_HIDDEN int pm__span_read(struct pm__guard *g, struct pm_handle *h, uint64_t va,
			    uint64_t *dst, size_t n);
PM_HIDDEN void pm__span_zero(struct pm__guard *g, uint64_t *dst, size_t n);
/* pm__handle_check() for the data of a pm__guarded() call: the answer of
 * its last token, when that was read after all of the data. */
PM_HIDDEN int pm__guard_check(const struct pm__guard *g, struct pm_handle *h);
/* Copy the uncertain ranges into a caller's pm_read_info (count: all of
 * them, copied: at most its capacity). */
PM_HIDDEN void pm__guard_report(const struct pm__guard *g, struct pm_read_info *info);

/* ---- the read engine (read.c), for batches ---- */

/* A span the planner wants read: n entries for [va, ...) into dst. */
typedef int (*pm__span_fn)(void *arg, uint64_t va, uint64_t *dst, size_t n);
/* pm_read's argument checks (without opts): 0 or -EINVAL. */
PM_HIDDEN int pm__read_args(struct pm_handle *h, uint64_t start, uint64_t end,
			    const uint64_t *entries, const struct pm_read_info *info);
/* Plan a read as pm_read would: gaps zero-filled in @entries, every span
 * to read handed to @emit instead of read. */
PM_HIDDEN int pm__read_plan(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
			    pm__span_fn emit, void *arg);
PM_HIDDEN void pm__fill_info(struct pm_read_info *info, uint64_t flags, uint64_t retries,
			     uint64_t kernel_reads);
/* pm_read on a caller's VMA cursor (shared with the caller's own
 * lookups); pm_read is this with a cursor of its own. */
PM_HIDDEN long pm__read(struct pm_handle *h, uint64_t start, uint64_t end, uint64_t *entries,
			const struct pm_read_opts *opts, struct pm_read_info *info,
			struct pm__vcursor *vc);
/* pm_read with these flags (internal ones allowed). */
PM_HIDDEN long pm__read_flags(struct pm_handle *h, uint64_t start, uint64_t end,
			      uint64_t *entries, uint64_t flags, uint64_t max_retries,
			      struct pm_read_info *info);
/* Touch every page of an output buffer (see pm_read). */
PM_HIDDEN void pm__prefault(uint64_t *entries, size_t n);

#endif
