/*
 * mhd-static: a bare libmicrohttpd server for bench/api.sh. It serves files' bytes on a Unix socket with the same
 * daemon setup as the agent's API server (Sources/CMicroHTTPD/shim.h: an epoll internal thread pool, suspend and
 * resume allowed, the agent's default pool of 4 threads and 60 s connection timeout), so the benchmark can tell what
 * the agent adds to the library under it.
 *
 * usage: mhd-static SOCKET THREADS URL=FILE [URL=FILE ...]
 * A URL may carry a query string; it is matched as "path?query" against the request, exactly; the file name is
 * what follows the last "=". Runs until SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct entry {
	char *url;
	struct MHD_Response *response;
};

static struct entry *entries;
static int entry_count;

static void die(const char *what)
{
	fprintf(stderr, "mhd-static: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct MHD_Response *file_response(const char *path)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	data = malloc(st.st_size ? st.st_size : 1);
	if (!data || read(fd, data, st.st_size) != st.st_size)
		die(path);
	close(fd);
	struct MHD_Response *r = MHD_create_response_from_buffer(st.st_size, data, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	return r;
}

static enum MHD_Result add_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	char *url = cls;
	(void)kind;
	strcat(url, strchr(url, '?') ? "&" : "?");
	strcat(url, key);
	if (value) {
		strcat(url, "=");
		strcat(url, value);
	}
	return MHD_YES;
}

/* Answers on the second call for a request, as the agent does: answering on the first makes MHD close keep-alive. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
	static int second;
	char full[4096];
	(void)cls, (void)method, (void)version, (void)upload_data, (void)upload_data_size;

	if (*state == NULL) {
		*state = &second;
		return MHD_YES;
	}
	if (strlen(url) > 1024)
		return MHD_NO;
	strcpy(full, url);
	MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, add_query, full);
	for (int i = 0; i < entry_count; i++)
		if (strcmp(entries[i].url, full) == 0)
			return MHD_queue_response(connection, MHD_HTTP_OK, entries[i].response);
	static const char missing[] = "{\"message\":\"not found\"}";
	struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(missing) - 1, (void *)missing,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret = MHD_queue_response(connection, MHD_HTTP_NOT_FOUND, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	sigset_t set;
	int fd, sig, threads;

	if (argc < 4) {
		fprintf(stderr, "usage: mhd-static SOCKET THREADS URL=FILE...\n");
		return 2;
	}
	threads = atoi(argv[2]);
	entry_count = argc - 3;
	entries = calloc(entry_count, sizeof(*entries));
	for (int i = 0; i < entry_count; i++) {
		char *eq = strrchr(argv[i + 3], '=');
		if (!eq) {
			fprintf(stderr, "mhd-static: %s: expected URL=FILE\n", argv[i + 3]);
			return 2;
		}
		*eq = 0;
		entries[i].url = argv[i + 3];
		entries[i].response = file_response(eq + 1);
	}
	if (strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "mhd-static: socket path too long\n");
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);
	unlink(argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 128) < 0)
		die(argv[1]);

	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d;
	if (threads <= 1)
		d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				     MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
				     MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!d)
		die("MHD_start_daemon");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	unlink(argv[1]);
	return 0;
}
