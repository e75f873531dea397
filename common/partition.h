/*
 * partition: map a record key (a client id) to its Kafka partition exactly as
 * the producers do, so the router knows which partition, and so which edge,
 * carries a client's records. Pure: no I/O, no librdkafka, libc only.
 */
#ifndef KWS_PARTITION_H
#define KWS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* How producers hash keys. The producers' setting must be configured here:
 * a mismatch sends every client to the wrong partition. */
enum partitioner {
	/* Java client's default (DefaultPartitioner / BuiltInPartitioner) and
	 * librdkafka's "murmur2" / "murmur2_random". */
	PARTITIONER_MURMUR2 = 0,
	/* librdkafka's default "consistent_random" and "consistent" (for
	 * keyed records): CRC-32 of the key. */
	PARTITIONER_CRC32 = 1,
};

/* Parses "murmur2" or "crc32" (exact, case-sensitive) into *out.
 * Returns 0, or -1 (and leaves *out alone) for anything else, NULL included. */
int partitioner_parse(const char *name, enum partitioner *out);

/* The name partitioner_parse accepts for p: a static string, never NULL
 * ("unknown" for a value outside the enum). */
const char *partitioner_name(enum partitioner p);

/* Kafka's org.apache.kafka.common.utils.Utils.murmur2 (MurmurHash2, seed
 * 0x9747b28c, bytes read as unsigned and little-endian, any alignment), with
 * Java's int result returned as the same 32 bits in a uint32_t. key may be
 * NULL only when len is 0. */
uint32_t kafka_murmur2(const void *key, size_t len);

/* CRC-32 as in IEEE 802.3 / zlib's crc32() (reflected polynomial 0xEDB88320,
 * initial value and final XOR 0xFFFFFFFF): librdkafka's rd_crc32(), used by
 * its consistent partitioners. key may be NULL only when len is 0. */
uint32_t kafka_crc32(const void *key, size_t len);

/* Partition of a key among partition_count partitions, as producers pick it:
 *   PARTITIONER_MURMUR2: (kafka_murmur2(key) & 0x7fffffff) % partition_count
 *                        (Java's Utils.toPositive, then %);
 *   PARTITIONER_CRC32:   kafka_crc32(key) % partition_count.
 * Keys are meant to be non-empty: a zero-length key hashes like any other
 * here (as librdkafka's "murmur2" and "consistent" do), but producers using
 * "*_random" partitioners, or the Java client with a null key, scatter such
 * records. Returns a partition in [0, partition_count), or -1 if
 * partition_count <= 0, p is not a partitioner, or key is NULL with len > 0. */
int32_t partition_for_key(enum partitioner p, const void *key, size_t len, int32_t partition_count);

#endif
