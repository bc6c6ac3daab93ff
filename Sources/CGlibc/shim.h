/* glibc interfaces Swift's Glibc module does not import. */
#ifndef NODEAGENT_CGLIBC_SHIM_H
#define NODEAGENT_CGLIBC_SHIM_H

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <linux/memfd.h>

/* Names the calling thread (the kernel keeps 15 bytes); prctl is variadic and does not import. */
static inline int cglibc_name_thread(const char *name)
{
	return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

#ifndef SCHED_BATCH
#define SCHED_BATCH 3 /* <sched.h> defines it only under _GNU_SOURCE */
#endif

/*
 * Makes the calling thread batch work (SCHED_BATCH): it keeps its fair share of the CPU but does not preempt the
 * thread running when it wakes. Returns 0 or an errno.
 */
static inline int cglibc_thread_batch(void)
{
	struct sched_param param = { .sched_priority = 0 };

	return pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

/* Caps how many malloc arenas the process may create; returns 1 on success (mallopt's convention). */
static inline int cglibc_limit_malloc_arenas(int arenas)
{
	return mallopt(M_ARENA_MAX, arenas);
}

/* Returns the heap's free pages to the kernel (malloc_trim(0)); 1 if any were released. */
static inline int cglibc_release_free_heap(void)
{
	return malloc_trim(0);
}

/*
 * The driver name of interface `name` ("veth", "netkit", ...) into `driver`: 0, or -errno (-EOPNOTSUPP for an
 * interface without a driver, such as lo). ETHTOOL_GDRVINFO through SIOCETHTOOL on a socket, so the name is looked
 * up in the caller's network namespace (/sys/class/net shows the namespace sysfs was mounted in). Exists because
 * the ioctl takes a pointer inside ifreq's union, and struct ethtool_drvinfo is not in Glibc's module.
 */
static inline int cglibc_interface_driver(const char *name, char *driver, size_t size)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq request;
	int fd, rc;

	if (strlen(name) >= IFNAMSIZ)
		return -ENAMETOOLONG;
	memset(&request, 0, sizeof(request));
	memcpy(request.ifr_name, name, strlen(name));
	request.ifr_data = (char *)&info;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = ioctl(fd, SIOCETHTOOL, &request) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0)
		snprintf(driver, size, "%s", info.driver);
	return rc;
}

/*
 * Waits until every CPU has passed through a quiescent state: an RCU grace period (membarrier's
 * MEMBARRIER_CMD_GLOBAL is synchronize_rcu()), after which no BPF program that started before the call is still
 * running. Returns 0, or -errno (-EINVAL on a nohz_full kernel, where the command is refused). Exists because
 * syscall is variadic and glibc has no membarrier wrapper.
 */
static inline int cglibc_synchronize_rcu(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0 ? -errno : 0;
}

/*
 * Whether cglibc_synchronize_rcu would be honoured, without waiting for a grace period: 1 when membarrier's
 * MEMBARRIER_CMD_QUERY lists MEMBARRIER_CMD_GLOBAL (the kernel leaves it out on nohz_full CPUs), 0 when not,
 * -errno when membarrier itself is missing (CONFIG_MEMBARRIER off: -ENOSYS).
 */
static inline int cglibc_grace_period_offered(void)
{
	long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (commands < 0)
		return -errno;
	return (commands & MEMBARRIER_CMD_GLOBAL) ? 1 : 0;
}

/* An anonymous file that closes on exec (memfd_create, declared by <sys/mman.h> only under _GNU_SOURCE). */
static inline int cglibc_memfd(const char *name)
{
	return (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
}

#endif
