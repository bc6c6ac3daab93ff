/* Typed entry points into libmicrohttpd for Swift: MHD_start_daemon is variadic and does not import. */
#ifndef CMICROHTTPD_SHIM_H
#define CMICROHTTPD_SHIM_H
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdarg.h>
#include <microhttpd.h>

/*
 * MHD_start_daemon takes its options as a variadic list, which Swift cannot call. This starts a daemon on an
 * already bound and listening socket (we create the Unix socket ourselves so we control its path, mode and stale-file
 * handling) with an internal epoll thread pool, MHD's error log routed to `logger`, and suspend/resume allowed so a
 * streaming response with nothing to send can park its connection instead of blocking a worker thread.
 * MHD owns `listen_fd` once this returns non-NULL and closes it in MHD_stop_daemon.
 */
static inline struct MHD_Daemon *cmhd_start_unix_daemon(int listen_fd, unsigned int thread_pool_size,
							unsigned int connection_timeout_seconds,
							MHD_AccessHandlerCallback handler, void *handler_cls,
							MHD_RequestCompletedCallback completed, void *completed_cls,
							MHD_LogCallback logger, void *logger_cls)
{
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;

	/* The logger comes first so that complaints about later options reach it. MHD warns about a pool of one
	 * thread, so that case runs its single internal thread without a pool. */
	if (thread_pool_size <= 1)
		return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
					MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
					MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
					MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
					MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
					MHD_OPTION_END);
	return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls,
				MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
				MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
				MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
				MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
				MHD_OPTION_END);
}

/*
 * MHD_get_connection_info is variadic. The connection's socket is what SO_PEERCRED needs to name the client process.
 * Returns -1 when MHD cannot tell.
 */
static inline int cmhd_connection_fd(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);

	return info == NULL ? -1 : (int)info->connect_fd;
}

#endif
