/*
 * libcurl for Swift, loaded when first needed. The daemon talks HTTP only in cluster mode (etcd), so libcurl and
 * the TLS, Kerberos and LDAP libraries it brings are not mapped into an agent that never uses them; nodectl loads
 * it on its first request. curl_easy_setopt and curl_easy_getinfo are variadic and do not import: each typed
 * wrapper passes one kind of argument, so Swift calls stay checked by the compiler.
 *
 * Call nc_curl_load() before any other function here.
 */
#ifndef CCURL_H
#define CCURL_H
#include <curl/curl.h>

/* Loads libcurl and runs curl_global_init once per process; NULL when ready, else why not (thread-safe). */
const char *nc_curl_load(void);

CURL *nc_curl_easy_init(void);
void nc_curl_easy_cleanup(CURL *curl);
const char *nc_curl_easy_strerror(CURLcode code);
CURLM *nc_curl_multi_init(void);
CURLMcode nc_curl_multi_cleanup(CURLM *multi);
CURLMcode nc_curl_multi_add_handle(CURLM *multi, CURL *curl);
CURLMcode nc_curl_multi_remove_handle(CURLM *multi, CURL *curl);
CURLMcode nc_curl_multi_perform(CURLM *multi, int *running);
CURLMcode nc_curl_multi_poll(CURLM *multi, struct curl_waitfd *extra, unsigned int count, int timeout_ms, int *ready);
CURLMcode nc_curl_multi_wakeup(CURLM *multi);
CURLMsg *nc_curl_multi_info_read(CURLM *multi, int *left);
struct curl_slist *nc_curl_slist_append(struct curl_slist *list, const char *text);
void nc_curl_slist_free_all(struct curl_slist *list);

CURLcode nc_curl_set_long(CURL *curl, CURLoption option, long value);
CURLcode nc_curl_set_string(CURL *curl, CURLoption option, const char *value);
CURLcode nc_curl_set_pointer(CURL *curl, CURLoption option, void *value);
CURLcode nc_curl_set_offset(CURL *curl, CURLoption option, curl_off_t value);
/* WRITEFUNCTION and HEADERFUNCTION share this signature. */
CURLcode nc_curl_set_callback(CURL *curl, CURLoption option, curl_write_callback callback);
CURLcode nc_curl_get_long(CURL *curl, CURLINFO info, long *value);

#endif
