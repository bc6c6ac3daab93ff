/*
 * libcurl for Swift. curl_easy_setopt and curl_easy_getinfo are variadic and do not import: each typed wrapper
 * below passes one kind of argument, so Swift calls stay checked by the compiler.
 */
#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
#include <curl/curl.h>

static inline CURLcode nc_curl_set_long(CURL *curl, CURLoption option, long value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode nc_curl_set_string(CURL *curl, CURLoption option, const char *value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode nc_curl_set_pointer(CURL *curl, CURLoption option, void *value)
{
	return curl_easy_setopt(curl, option, value);
}

static inline CURLcode nc_curl_set_offset(CURL *curl, CURLoption option, curl_off_t value)
{
	return curl_easy_setopt(curl, option, value);
}

/* WRITEFUNCTION and HEADERFUNCTION share this signature. */
static inline CURLcode nc_curl_set_callback(CURL *curl, CURLoption option, curl_write_callback callback)
{
	return curl_easy_setopt(curl, option, callback);
}

static inline CURLcode nc_curl_get_long(CURL *curl, CURLINFO info, long *value)
{
	return curl_easy_getinfo(curl, info, value);
}

#endif
