/*
 * Typed entry points into libbpf for Swift. libbpf's option structs are
 * initialised with the LIBBPF_OPTS macro and its logging goes through a
 * va_list callback: neither imports into Swift, so each wrapper here exists
 * to hide one of them behind a plain C signature.
 */
#ifndef CLIBBPF_SHIM_H
#define CLIBBPF_SHIM_H

#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/pkt_cls.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

/*
 * libbpf's btf.h defines the BTF kinds newer than the first ones again, as macros, for an older <linux/btf.h>.
 * <linux/btf.h> has them all as enumerators here, and both forms of a name make it ambiguous to Swift.
 */
#undef BTF_KIND_FUNC
#undef BTF_KIND_FUNC_PROTO
#undef BTF_KIND_VAR
#undef BTF_KIND_DATASEC
#undef BTF_KIND_FLOAT
#undef BTF_KIND_DECL_TAG
#undef BTF_KIND_TYPE_TAG
#undef BTF_KIND_ENUM64

/* Log sink for libbpf's messages: libbpf hands out a format and a va_list. */
typedef void (*cbpf_log_fn)(int level, const char *msg);

/* The sink lives in a function-local static: Swift emits inline functions, not header-level statics. */
static inline cbpf_log_fn *cbpf_log_sink_slot(void)
{
	static cbpf_log_fn sink;

	return &sink;
}

static int cbpf_print_trampoline(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, args);
	if (*cbpf_log_sink_slot())
		(*cbpf_log_sink_slot())((int)level, buf);
	return 0;
}

static inline void cbpf_set_log_sink(cbpf_log_fn fn)
{
	*cbpf_log_sink_slot() = fn;
	libbpf_set_print(fn ? cbpf_print_trampoline : NULL);
}

/*
 * bpf_object__open_mem with an object name and, unless NULL, the BTF its CO-RE relocations are resolved against
 * instead of the kernel's whole BTF (LIBBPF_OPTS).
 */
static inline struct bpf_object *cbpf_object_open_mem(const void *buf, size_t size, const char *name,
							const char *btf_custom_path)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name, .btf_custom_path = btf_custom_path);
	struct bpf_object *obj = bpf_object__open_mem(buf, size, &opts);

	return libbpf_get_error(obj) ? NULL : obj;
}

/* bpf_map_create with map flags (LIBBPF_OPTS). */
static inline int cbpf_map_create(enum bpf_map_type type, const char *name, __u32 key_size, __u32 value_size,
				  __u32 max_entries, __u32 flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);

	return bpf_map_create(type, name, key_size, value_size, max_entries, &opts);
}

/* Batch lookup (LIBBPF_OPTS for elem_flags). */
static inline int cbpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	return bpf_map_lookup_batch(fd, in_batch, out_batch, keys, values, count, &opts);
}

/* Batch delete (LIBBPF_OPTS). */
static inline int cbpf_map_delete_batch(int fd, const void *keys, __u32 *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	return bpf_map_delete_batch(fd, keys, count, &opts);
}

/* Batch update with per-element flags (LIBBPF_OPTS for elem_flags). */
static inline int cbpf_map_update_batch(int fd, const void *keys, const void *values, __u32 *count, __u64 elem_flags)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = elem_flags);

	return bpf_map_update_batch(fd, keys, values, count, &opts);
}

/* BPF_PROG_TEST_RUN on a packet, optionally with an __sk_buff context carrying ifindex. */
static inline int cbpf_prog_test_run(int prog_fd, const void *data, __u32 size, void *data_out, __u32 *size_out,
				     __u32 repeat, __u32 ifindex, __u32 *retval, __u32 *duration)
{
	struct __sk_buff ctx = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = size, .data_out = data_out,
		    .data_size_out = size_out ? *size_out : 0, .repeat = repeat);
	int err;

	if (ifindex) {
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (retval)
		*retval = opts.retval;
	if (duration)
		*duration = opts.duration;
	if (size_out)
		*size_out = opts.data_size_out;
	return err;
}

/* BPF_PROG_TEST_RUN of a program that takes only a context (BPF_PROG_TYPE_SYSCALL): the kernel writes it back. */
static inline int cbpf_prog_run_context(int prog_fd, void *ctx, __u32 size, __u32 *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = ctx, .ctx_size_in = size);
	int err;

	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (retval)
		*retval = opts.retval;
	return err;
}

/* The tc hook and attach options (LIBBPF_OPTS), reduced to what an endpoint needs. */
static inline int cbpf_tc_hook_create(int ifindex, enum bpf_tc_attach_point point)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	int err = bpf_tc_hook_create(&hook);

	/* The clsact qdisc is shared by both directions: existing is fine. */
	return err == -EEXIST ? 0 : err;
}

static inline int cbpf_tc_attach(int ifindex, enum bpf_tc_attach_point point, int prog_fd, __u32 handle,
				 __u32 priority)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = handle, .priority = priority,
		    .flags = BPF_TC_F_REPLACE);

	return bpf_tc_attach(&hook, &opts);
}

static inline int cbpf_tc_detach(int ifindex, enum bpf_tc_attach_point point, __u32 handle, __u32 priority)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);

	return bpf_tc_detach(&hook, &opts);
}

/* Returns the attached program id (>0), 0 when nothing is attached, or a negative errno. */
static inline int cbpf_tc_query(int ifindex, enum bpf_tc_attach_point point, __u32 handle, __u32 priority)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
	int err = bpf_tc_query(&hook, &opts);

	if (err == -ENOENT)
		return 0;
	return err < 0 ? err : (int)opts.prog_id;
}

/*
 * tcx (Linux 6.6): the tc hooks' own list of programs, run without the clsact qdisc's classifier. libbpf 1.1
 * predates it: a link is made with its bpf_link_create and the new attach types' numbers, and the list is read
 * with bpf(2) directly, in the 6.6 layout of BPF_PROG_QUERY (libbpf's would let the kernel write past the end
 * of its own bpf_attr).
 */
#define CBPF_TCX_INGRESS 46
#define CBPF_TCX_EGRESS 47
#define CBPF_LINK_TYPE_TCX 11

struct cbpf_tcx_query_attr {
	__u32 target_ifindex;
	__u32 attach_type;
	__u32 query_flags;
	__u32 attach_flags;
	__u64 prog_ids;
	__u32 count;
	__u32 pad;
	__u64 prog_attach_flags;
	__u64 link_ids;
	__u64 link_attach_flags;
	__u64 revision;
};

/*
 * The ids of the programs on the hook, in the order they run: how many there are (at most capacity are
 * written), or -errno (-EINVAL: a kernel without tcx).
 */
static inline int cbpf_tcx_query(int ifindex, __u32 attach_type, __u32 *ids, __u32 capacity)
{
	struct cbpf_tcx_query_attr attr;
	long rc;

	memset(&attr, 0, sizeof(attr));
	attr.target_ifindex = (__u32)ifindex;
	attr.attach_type = attach_type;
	attr.prog_ids = (__u64)(unsigned long)ids;
	attr.count = capacity;
	rc = syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr));
	return rc < 0 ? -errno : (int)attr.count;
}

/* A link attaching prog_fd at the end of the hook's list: its descriptor, or -errno. */
static inline int cbpf_tcx_link_create(int prog_fd, int ifindex, __u32 attach_type)
{
	int fd = bpf_link_create(prog_fd, ifindex, (enum bpf_attach_type)attach_type, NULL);

	return fd < 0 ? -errno : fd;
}

/*
 * The tcx half of a link's info: its program, interface and hook. ifindex is 0 once the interface is gone (the
 * link is defunct then). Returns 0, -EINVAL for a link of another type, or -errno.
 */
static inline int cbpf_link_tcx_info(int link_fd, __u32 *prog_id, __u32 *ifindex, __u32 *attach_type)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info), fields[2];

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len))
		return -errno;
	if (info.type != CBPF_LINK_TYPE_TCX)
		return -EINVAL;
	/* The union's tcx member (6.6): ifindex, then attach_type, where these headers put cgroup's. */
	memcpy(fields, &info.cgroup, sizeof(fields));
	*prog_id = info.prog_id;
	*ifindex = fields[0];
	*attach_type = fields[1];
	return 0;
}

/* Removes the clsact qdisc (both directions) from an interface. */
static inline int cbpf_tc_hook_destroy(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);

	return bpf_tc_hook_destroy(&hook);
}

/* statfs(2)'s f_type for a path (Glibc's module does not export sys/vfs.h), or -errno. */
static inline long cbpf_fs_type(const char *path)
{
	struct statfs info;

	if (statfs(path, &info) != 0)
		return -errno;
	return (long)info.f_type;
}

/* unshare(2) of the network namespace: glibc declares unshare only under _GNU_SOURCE, which Swift's Glibc module
 * is not built with. Affects the calling thread only. Returns 0 or -errno. */
extern int unshare(int flags);

static inline int cbpf_unshare_net(void)
{
	return unshare(0x40000000 /* CLONE_NEWNET */) ? -errno : 0;
}

/* A minimal SCHED_CLS program ("r0 = TC_ACT_OK; exit") for attach probes: bpf_insn's register fields are
 * bitfields, which Swift cannot initialise. Returns the program fd or -errno. */
static inline int cbpf_load_probe_sched_cls(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = TC_ACT_OK },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "na_probe", "GPL", insns, 2, NULL);

	return fd < 0 ? -errno : fd;
}

/* The cgroup half of a link's info (bpf_link_info's anonymous union does not import into Swift). cgroup_id is 0
 * once the cgroup is gone (the link is defunct then). Returns 0, -EINVAL for a link of another type, or -errno. */
static inline int cbpf_link_cgroup_info(int link_fd, __u32 *prog_id, __u64 *cgroup_id, __u32 *attach_type)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len))
		return -errno;
	if (info.type != BPF_LINK_TYPE_CGROUP)
		return -EINVAL;
	*prog_id = info.prog_id;
	*cgroup_id = info.cgroup.cgroup_id;
	*attach_type = info.cgroup.attach_type;
	return 0;
}

#endif /* CLIBBPF_SHIM_H */
