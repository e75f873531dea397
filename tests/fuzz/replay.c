/*
 * replay: runs a libFuzzer target over every regular file of a directory, so
 * that a fuzz corpus replays as an ordinary test without libFuzzer.
 *   replay DIR
 * Prints how many files it replayed. Exits 1 if DIR cannot be read, if a file
 * cannot be read, or if DIR holds no files; a crash in the target ends it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file at path into a buffer of exactly its size (so that a
 * sanitizer catches reads past the end); returns 0 or -errno. */
static int read_file(const char *path, uint8_t **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *p = NULL;
	int err = 0;

	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0) {
		err = -errno;
		goto out;
	}
	p = xmalloc((size_t)st.st_size);
	if (st.st_size > 0 && fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		err = ferror(f) ? -EIO : -EAGAIN; /* short: changed under us */
		free(p);
		p = NULL;
		goto out;
	}
	*data = p;
	*size = (size_t)st.st_size;
out:
	fclose(f);
	return err;
}

int main(int argc, char **argv)
{
	struct dirent **names = NULL;
	unsigned long replayed = 0;
	int n, rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 1;
	}
	/* Sorted, so that a failure always shows up in the same place. */
	n = scandir(argv[1], &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char *path = NULL;
		struct stat st;
		uint8_t *data = NULL;
		size_t size = 0;
		int err;

		if (asprintf(&path, "%s/%s", argv[1], names[i]->d_name) < 0)
			abort();
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			err = read_file(path, &data, &size);
			if (err) {
				fprintf(stderr, "%s: %s: %s\n", argv[0], path, strerror(-err));
				rc = 1;
			} else {
				LLVMFuzzerTestOneInput(data, size);
				free(data);
				replayed++;
			}
		}
		free(path);
		free(names[i]);
	}
	free(names);
	printf("replayed %lu files from %s\n", replayed, argv[1]);
	if (replayed == 0) {
		fprintf(stderr, "%s: %s: no files to replay\n", argv[0], argv[1]);
		rc = 1;
	}
	return rc;
}
