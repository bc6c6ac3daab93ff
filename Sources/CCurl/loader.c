/* libcurl resolved with dlopen on first use (see ccurl.h). */
#include "ccurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define NC_CURL_LIBRARY "libcurl.so.4"

static struct {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *curl);
	const char *(*easy_strerror)(CURLcode code);
	CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
	CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *multi);
	CURLMcode (*multi_add_handle)(CURLM *multi, CURL *curl);
	CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *curl);
	CURLMcode (*multi_perform)(CURLM *multi, int *running);
	CURLMcode (*multi_poll)(CURLM *multi, struct curl_waitfd *extra, unsigned int count, int timeout_ms,
				int *ready);
	CURLMcode (*multi_wakeup)(CURLM *multi);
	CURLMsg *(*multi_info_read)(CURLM *multi, int *left);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *text);
	void (*slist_free_all)(struct curl_slist *list);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];

static int resolve(void *library, void **slot, const char *name)
{
	*slot = dlsym(library, name);
	if (*slot)
		return 0;
	snprintf(load_error, sizeof(load_error), "%s has no %s", NC_CURL_LIBRARY, name);
	return -1;
}

#define RESOLVE(field) resolve(library, (void **)&api.field, "curl_" #field)

static void load(void)
{
	void *library = dlopen(NC_CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (!library) {
		snprintf(load_error, sizeof(load_error), "cannot load %s: %s", NC_CURL_LIBRARY, dlerror());
		return;
	}
	if (RESOLVE(global_init) || RESOLVE(easy_init) || RESOLVE(easy_cleanup) || RESOLVE(easy_strerror) ||
	    RESOLVE(easy_setopt) || RESOLVE(easy_getinfo) || RESOLVE(multi_init) || RESOLVE(multi_cleanup) ||
	    RESOLVE(multi_add_handle) || RESOLVE(multi_remove_handle) || RESOLVE(multi_perform) ||
	    RESOLVE(multi_poll) || RESOLVE(multi_wakeup) || RESOLVE(multi_info_read) || RESOLVE(slist_append) ||
	    RESOLVE(slist_free_all))
		return;
	CURLcode code = api.global_init(CURL_GLOBAL_DEFAULT);
	if (code != CURLE_OK)
		snprintf(load_error, sizeof(load_error), "curl_global_init: %s", api.easy_strerror(code));
}

const char *nc_curl_load(void)
{
	pthread_once(&load_once, load);
	return load_error[0] ? load_error : NULL;
}

CURL *nc_curl_easy_init(void) { return api.easy_init(); }
void nc_curl_easy_cleanup(CURL *curl) { api.easy_cleanup(curl); }
const char *nc_curl_easy_strerror(CURLcode code) { return api.easy_strerror(code); }
CURLM *nc_curl_multi_init(void) { return api.multi_init(); }
CURLMcode nc_curl_multi_cleanup(CURLM *multi) { return api.multi_cleanup(multi); }
CURLMcode nc_curl_multi_add_handle(CURLM *multi, CURL *curl) { return api.multi_add_handle(multi, curl); }
CURLMcode nc_curl_multi_remove_handle(CURLM *multi, CURL *curl) { return api.multi_remove_handle(multi, curl); }
CURLMcode nc_curl_multi_perform(CURLM *multi, int *running) { return api.multi_perform(multi, running); }
CURLMcode nc_curl_multi_wakeup(CURLM *multi) { return api.multi_wakeup(multi); }
CURLMsg *nc_curl_multi_info_read(CURLM *multi, int *left) { return api.multi_info_read(multi, left); }
void nc_curl_slist_free_all(struct curl_slist *list) { api.slist_free_all(list); }

CURLMcode nc_curl_multi_poll(CURLM *multi, struct curl_waitfd *extra, unsigned int count, int timeout_ms, int *ready)
{
	return api.multi_poll(multi, extra, count, timeout_ms, ready);
}

struct curl_slist *nc_curl_slist_append(struct curl_slist *list, const char *text)
{
	return api.slist_append(list, text);
}

CURLcode nc_curl_set_long(CURL *curl, CURLoption option, long value) { return api.easy_setopt(curl, option, value); }

CURLcode nc_curl_set_string(CURL *curl, CURLoption option, const char *value)
{
	return api.easy_setopt(curl, option, value);
}

CURLcode nc_curl_set_pointer(CURL *curl, CURLoption option, void *value)
{
	return api.easy_setopt(curl, option, value);
}

CURLcode nc_curl_set_offset(CURL *curl, CURLoption option, curl_off_t value)
{
	return api.easy_setopt(curl, option, value);
}

CURLcode nc_curl_set_callback(CURL *curl, CURLoption option, curl_write_callback callback)
{
	return api.easy_setopt(curl, option, callback);
}

CURLcode nc_curl_get_long(CURL *curl, CURLINFO info, long *value) { return api.easy_getinfo(curl, info, value); }
