/* partition: see partition.h. */
#include "partition.h"

#include <string.h>

int partitioner_parse(const char *name, enum partitioner *out)
{
	if (!name)
		return -1;
	if (strcmp(name, "murmur2") == 0) {
		*out = PARTITIONER_MURMUR2;
		return 0;
	}
	if (strcmp(name, "crc32") == 0) {
		*out = PARTITIONER_CRC32;
		return 0;
	}
	return -1;
}

const char *partitioner_name(enum partitioner p)
{
	switch (p) {
	case PARTITIONER_MURMUR2:
		return "murmur2";
	case PARTITIONER_CRC32:
		return "crc32";
	}
	return "unknown";
}

/*
 * Follows Utils.murmur2 in Kafka's clients (a port of Austin Appleby's
 * MurmurHashNeutral2). Java does the arithmetic on signed 32-bit ints that
 * wrap; uint32_t wraps to the same bits, and Java's ">>>" is the unsigned
 * shift. Java reads every byte as (data[i] & 0xff), i.e. unsigned, so bytes
 * >= 0x80 are not sign-extended: unsigned char here does the same. Words are
 * assembled byte by byte (little-endian), so alignment and host byte order do
 * not matter.
 */
uint32_t kafka_murmur2(const void *key, size_t len)
{
	const unsigned char *data = key;
	const uint32_t m = 0x5bd1e995;
	const int r = 24;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
			     (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
		k *= m;
		k ^= k >> r;
		k *= m;
		h *= m;
		h ^= k;
	}

	/* The last 1-3 bytes. Java's switch falls through, XORing byte 2 << 16,
	 * byte 1 << 8 and byte 0 into h: the bytes land on disjoint bits, so
	 * XORing them in as one little-endian word is the same. */
	if (len & 3) {
		uint32_t t = 0;
		size_t j;

		for (j = len & 3; j > 0; j--)
			t = t << 8 | data[i + j - 1];
		h ^= t;
		h *= m;
	}

	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

/* CRC-32 of the reflected polynomial 0xEDB88320, four bits at a time:
 * crc32_nibble[n] is the CRC register after shifting nibble n out. 16 words
 * instead of 256, with no run-time initialisation (so no race); keys are
 * short, so the halved speed does not matter. */
static const uint32_t crc32_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
	0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
	0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t kafka_crc32(const void *key, size_t len)
{
	const unsigned char *data = key;
	uint32_t crc = 0xffffffffu;
	size_t i;

	for (i = 0; i < len; i++) {
		crc ^= data[i];
		crc = (crc >> 4) ^ crc32_nibble[crc & 0x0f];
		crc = (crc >> 4) ^ crc32_nibble[crc & 0x0f];
	}
	return crc ^ 0xffffffffu;
}

int32_t partition_for_key(enum partitioner p, const void *key, size_t len, int32_t partition_count)
{
	uint32_t h;

	if (partition_count <= 0 || (!key && len > 0))
		return -1;
	switch (p) {
	case PARTITIONER_MURMUR2:
		h = kafka_murmur2(key, len) & 0x7fffffffu;
		break;
	case PARTITIONER_CRC32:
		h = kafka_crc32(key, len);
		break;
	default:
		return -1;
	}
	return (int32_t)(h % (uint32_t)partition_count);
}
