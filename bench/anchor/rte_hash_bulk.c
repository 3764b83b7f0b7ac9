/* The ceiling for the connection table: DPDK's own rte_hash on this machine.
 *
 * For each table size, inserts N random 16-byte keys (the size of an IPv4 flow
 * key), each with a pointer to its own 64-byte record, then looks keys up in a
 * random order:
 *   - bulk: rte_hash_lookup_bulk_data over bursts of 32, then one read and one
 *     write of each hit's record (what a connection lookup does with the state);
 *   - single: rte_hash_lookup_data one key at a time, with the same record touch.
 * Prints one line per size and mode:
 *   rte_hash keys=1000000 mode=bulk32 ns_per_lookup=40.1 hits=4194304
 *
 * Usage: rte_hash_bulk [EAL args] -- [SIZE ...]   (default sizes 1000000 10000000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#define BURST 32
#define LOOKUPS (1u << 22)

struct key {
	uint32_t src, dst;
	uint16_t sport, dport;
	uint8_t proto, pad[3];
};

struct record {
	struct key key;
	uint64_t packets;
	uint8_t rest[40];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double ns_per(uint64_t cycles, uint64_t count)
{
	return (double)cycles * 1e9 / (double)rte_get_tsc_hz() / (double)count;
}

static int run(uint32_t n)
{
	char name[32];
	snprintf(name, sizeof(name), "anchor%" PRIu32, n);
	struct rte_hash_parameters params = {
		.name = name,
		.entries = n,
		.key_len = sizeof(struct key),
		.hash_func = rte_jhash,
		.socket_id = (int)rte_socket_id(),
	};
	struct rte_hash *h = rte_hash_create(&params);
	struct key *keys = rte_malloc(NULL, sizeof(*keys) * n, 64);
	struct record *records = rte_malloc(NULL, sizeof(*records) * n, 64);
	uint32_t *order = malloc(sizeof(*order) * LOOKUPS);
	if (h == NULL || keys == NULL || records == NULL || order == NULL) {
		fprintf(stderr, "rte_hash_bulk: cannot allocate for %" PRIu32 " keys\n", n);
		return 1;
	}
	uint32_t inserted = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t r = next_random();
		keys[inserted] = (struct key){
			.src = (uint32_t)r,
			.dst = (uint32_t)(r >> 32),
			.sport = (uint16_t)next_random(),
			.dport = 80,
			.proto = 6,
		};
		records[inserted].key = keys[inserted];
		if (rte_hash_add_key_data(h, &keys[inserted], &records[inserted]) == 0)
			inserted++;
	}
	for (uint32_t i = 0; i < LOOKUPS; i++)
		order[i] = (uint32_t)(next_random() % inserted);

	const void *burst_keys[BURST];
	void *data[BURST];
	uint64_t hits = 0;
	uint64_t start = rte_rdtsc_precise();
	for (uint32_t i = 0; i < LOOKUPS; i += BURST) {
		uint64_t mask = 0;
		for (int j = 0; j < BURST; j++)
			burst_keys[j] = &keys[order[i + j]];
		rte_hash_lookup_bulk_data(h, burst_keys, BURST, &mask, data);
		for (int j = 0; j < BURST; j++) {
			if (mask & (1ull << j)) {
				((struct record *)data[j])->packets++;
				hits++;
			}
		}
	}
	uint64_t bulk = rte_rdtsc_precise() - start;
	printf("rte_hash keys=%" PRIu32 " mode=bulk32 ns_per_lookup=%.1f hits=%" PRIu64 "\n", inserted,
	       ns_per(bulk, LOOKUPS), hits);

	hits = 0;
	start = rte_rdtsc_precise();
	for (uint32_t i = 0; i < LOOKUPS / 4; i++) {
		void *d;
		if (rte_hash_lookup_data(h, &keys[order[i]], &d) >= 0) {
			((struct record *)d)->packets++;
			hits++;
		}
	}
	uint64_t single = rte_rdtsc_precise() - start;
	printf("rte_hash keys=%" PRIu32 " mode=single ns_per_lookup=%.1f hits=%" PRIu64 "\n", inserted,
	       ns_per(single, LOOKUPS / 4), hits);
	fflush(stdout);

	free(order);
	rte_free(records);
	rte_free(keys);
	rte_hash_free(h);
	return 0;
}

int main(int argc, char **argv)
{
	int used = rte_eal_init(argc, argv);
	if (used < 0) {
		fprintf(stderr, "rte_hash_bulk: EAL init failed\n");
		return 1;
	}
	argc -= used;
	argv += used;
	int status = 0;
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			status |= run((uint32_t)strtoul(argv[i], NULL, 10));
	} else {
		status |= run(1000000);
		status |= run(10000000);
	}
	rte_eal_cleanup();
	return status;
}
