/* jansson for Swift. The object iteration macros (json_object_foreach) do not import; Swift uses the json_object_iter functions. */
#ifndef CJANSSON_SHIM_H
#define CJANSSON_SHIM_H
#include <jansson.h>
#endif
