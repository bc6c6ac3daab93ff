/*
 * libsystemd's readiness protocol for Swift, loaded only when a service manager listens: without $NOTIFY_SOCKET
 * sd_notify does nothing, so an agent run by hand or in a container maps none of libsystemd and its compression
 * and crypto libraries.
 */
#ifndef CSYSTEMD_H
#define CSYSTEMD_H

/* sd_notify(3): > 0 when the manager was told, 0 without $NOTIFY_SOCKET, a negative errno on failure
 * (-ELIBACC when libsystemd cannot be loaded). */
int nc_sd_notify(int unset_environment, const char *state);

#endif
