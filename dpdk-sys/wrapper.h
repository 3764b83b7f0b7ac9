/* Headers bindgen sees. rte_config.h is force-included through the pkg-config
 * cflags (-include rte_config.h). */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_thread.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <rte_ring.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_flow.h>

/* Shims for things that are macros in C and therefore invisible to bindgen. */

/** The calling thread's rte_errno (a per-lcore TLS variable behind a macro). */
int dpdk_sys_rte_errno(void);

/** Sets the calling thread's rte_errno. */
void dpdk_sys_set_rte_errno(int value);
