/* sqlrec_bench.c: how fast the recognizer reads the INSERTs clients send
 * (one row, 100 rows, with $n parameters) and a COPY; median of rounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "sqlrec.h"

#define ROUNDS 7

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Statements per CPU second (process CPU time: the machine may be loaded),
 * the median of ROUNDS rounds of n calls. */
static double rate(const char *sql, size_t n)
{
	double r[ROUNDS];

	for (int k = 0; k < ROUNDS; k++) {
		double t0 = now_s();

		for (size_t i = 0; i < n; i++) {
			struct sqlr_stmt *st;
			struct sqlr_why why;

			if (sqlr_recognize((const uint8_t *)sql, strlen(sql),
			                   &st, &why) != SQLR_OK) {
				fprintf(stderr, "refused: %s\n", why.reason);
				exit(1);
			}
			sqlr_stmt_free(st);
		}
		r[k] = (double)n / (now_s() - t0);
	}
	qsort(r, ROUNDS, sizeof(r[0]), cmp_double);
	return r[ROUNDS / 2];
}

/* INSERT INTO ev (id, name, score, ok, ts) VALUES (...) x rows */
static char *insert_sql(size_t rows, int params)
{
	struct evbuffer *b = evbuffer_new();
	char *s;
	size_t len;

	evbuffer_add_printf(b, "INSERT INTO public.ev (id, name, score, ok, "
	                       "ts) VALUES ");
	for (size_t i = 0; i < rows; i++) {
		if (params)
			evbuffer_add_printf(b,
			                    "%s($%zu, $%zu, $%zu, $%zu, $%zu)",
			                    i ? ", " : "", 5 * i + 1, 5 * i + 2,
			                    5 * i + 3, 5 * i + 4, 5 * i + 5);
		else
			evbuffer_add_printf(
			    b,
			    "%s(%zu, 'name %zu it''s', %zu.25, true, "
			    "'2024-01-01 00:00:%02zu+00'::timestamptz)",
			    i ? ", " : "", i, i, i, i % 60);
	}
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

int main(void)
{
	char *one = insert_sql(1, 0), *hundred = insert_sql(100, 0);
	char *params = insert_sql(100, 1);
	const char *copy = "COPY public.ev (id, name) FROM STDIN WITH (FORMAT "
	                   "csv, HEADER)";
	double r1 = rate(one, 200000), r100 = rate(hundred, 4000);
	double rp = rate(params, 4000), rc = rate(copy, 200000);

	printf("{\"rounds\": %d, \"one_row_stmts_s\": %.0f, "
	       "\"hundred_rows_stmts_s\": %.0f, \"hundred_rows_rows_s\": %.0f, "
	       "\"hundred_params_stmts_s\": %.0f, \"copy_stmts_s\": %.0f, "
	       "\"one_row_bytes\": %zu, \"hundred_rows_bytes\": %zu}\n",
	       ROUNDS, r1, r100, r100 * 100, rp, rc, strlen(one),
	       strlen(hundred));
	free(one);
	free(hundred);
	free(params);
	return 0;
}
