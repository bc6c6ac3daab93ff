/* sd_notify through libsystemd, resolved with dlopen on first use (see csystemd.h). */
#include "csystemd.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static int (*sd_notify_function)(int unset_environment, const char *state);
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
	void *library = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
	if (library)
		sd_notify_function = (int (*)(int, const char *))dlsym(library, "sd_notify");
}

int nc_sd_notify(int unset_environment, const char *state)
{
	if (!getenv("NOTIFY_SOCKET"))
		return 0;
	pthread_once(&load_once, load);
	return sd_notify_function ? sd_notify_function(unset_environment, state) : -ELIBACC;
}
