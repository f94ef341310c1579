/* metrics.c: the process's metric registry and its Prometheus text. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

struct mt_metric {
	struct mt_metric *next; /* its family's children, in creation order */
	const struct mt_desc *d;
	char *values[MT_MAX_LABELS];
	double v;          /* counter, gauge (exact for integers < 2^53) */
	uint64_t count;    /* histogram: observations */
	double sum;        /* histogram: their sum */
	uint64_t *buckets; /* histogram: nbuckets + 1, not cumulative */
};

struct mt_family {
	struct mt_family *next; /* the registry, in registration order */
	const struct mt_desc *d;
	struct mt_metric *first, *last;
	size_t nchildren; /* not counting the overflow child */
	struct mt_metric *overflow;
};

static struct {
	struct mt_family *first, *last;
	mt_collect_cb collect;
	void *collect_arg;
} R;

/* ---- the registry ---- */

struct mt_family *mt_family(const struct mt_desc *d)
{
	struct mt_family *f;

	for (f = R.first; f != NULL; f = f->next) {
		if (f->d == d)
			return f;
	}
	if (d->nlabels > MT_MAX_LABELS || (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->d = d;
	if (R.last)
		R.last->next = f;
	else
		R.first = f;
	R.last = f;
	return f;
}

static void free_metric(struct mt_metric *m)
{
	for (size_t i = 0; i < MT_MAX_LABELS; i++)
		free(m->values[i]);
	free(m->buckets);
	free(m);
}

static struct mt_metric *new_metric(const struct mt_desc *d,
                                    const char *const *values)
{
	struct mt_metric *m = calloc(1, sizeof(*m));
	bool ok = m != NULL;

	if (ok)
		m->d = d;
	for (size_t i = 0; ok && i < d->nlabels; i++)
		ok =
		    (m->values[i] = strdup(values[i] ? values[i] : "")) != NULL;
	if (ok && d->type == MT_HISTOGRAM)
		ok = (m->buckets =
		          calloc(d->nbuckets + 1, sizeof(*m->buckets))) != NULL;
	if (!ok && m != NULL) {
		free_metric(m);
		m = NULL;
	}
	return m;
}

static bool same_values(const struct mt_metric *m, size_t n,
                        const char *const *values)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m->values[i], values[i] ? values[i] : "") != 0)
			return false;
	}
	return true;
}

static struct mt_metric *overflow_child(struct mt_family *f)
{
	if (f->overflow == NULL)
		f->overflow = new_metric(f->d, f->d->overflow);
	return f->overflow;
}

struct mt_metric *mt_child(struct mt_family *f, const char *const *values)
{
	size_t cap;
	struct mt_metric *m;

	if (f == NULL)
		return NULL;
	for (m = f->first; m != NULL; m = m->next) {
		if (same_values(m, f->d->nlabels, values))
			return m;
	}
	cap = f->d->max_children ? f->d->max_children : MT_DEFAULT_CHILDREN;
	if (f->nchildren >= cap || (m = new_metric(f->d, values)) == NULL)
		return overflow_child(f);
	if (f->last)
		f->last->next = m;
	else
		f->first = m;
	f->last = m;
	f->nchildren++;
	return m;
}

struct mt_metric *mt_metric_of(const struct mt_desc *d)
{
	return mt_child(mt_family(d), NULL);
}

void mt_set_collector(mt_collect_cb cb, void *arg)
{
	R.collect = cb;
	R.collect_arg = arg;
}

void mt_reset(void)
{
	struct mt_family *f, *fn;
	struct mt_metric *m, *mn;

	for (f = R.first; f != NULL; f = fn) {
		fn = f->next;
		for (m = f->first; m != NULL; m = mn) {
			mn = m->next;
			free_metric(m);
		}
		if (f->overflow)
			free_metric(f->overflow);
		free(f);
	}
	memset(&R, 0, sizeof(R));
}

/* ---- values ---- */

void mt_add(struct mt_metric *m, uint64_t n)
{
	if (m != NULL)
		m->v += (double)n;
}

void mt_set(struct mt_metric *m, double v)
{
	if (m != NULL && m->d->type != MT_HISTOGRAM)
		m->v = v;
}

void mt_observe(struct mt_metric *m, double v)
{
	size_t i = 0;

	if (m == NULL || m->d->type != MT_HISTOGRAM)
		return;
	while (i < m->d->nbuckets && v > m->d->buckets[i])
		i++;
	m->buckets[i]++;
	m->count++;
	m->sum += v;
}

double mt_value(const struct mt_metric *m)
{
	if (m == NULL)
		return 0;
	return m->d->type == MT_HISTOGRAM ? (double)m->count : m->v;
}

double mt_quantile(const struct mt_metric *m, double q)
{
	const struct mt_desc *d;
	uint64_t want, seen = 0;

	if (m == NULL || m->d->type != MT_HISTOGRAM || m->count == 0 ||
	    m->d->nbuckets == 0)
		return 0;
	d = m->d;
	want = (uint64_t)(q * (double)m->count + 0.999999);
	for (size_t i = 0; i < d->nbuckets; i++) {
		seen += m->buckets[i];
		if (seen >= want)
			return d->buckets[i];
	}
	return d->buckets[d->nbuckets - 1]; /* in +Inf: at least the last */
}

/* ---- the text format ---- */

const char *mt_label_escape(char *buf, size_t size, const char *v)
{
	size_t o = 0;

	if (size == 0)
		return buf;
	for (; *v; v++) {
		const char *esc = NULL;
		char one[2] = {*v, '\0'};
		size_t n;

		if (*v == '\\')
			esc = "\\\\";
		else if (*v == '"')
			esc = "\\\"";
		else if (*v == '\n')
			esc = "\\n";
		else
			esc = one;
		n = strlen(esc);
		if (o + n >= size)
			break;
		memcpy(buf + o, esc, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

/* Collects every evbuffer_add_printf result so one check covers a render. */
struct out {
	struct evbuffer *b;
	bool failed;
};

static __attribute__((format(printf, 2, 3))) void put(struct out *o,
                                                      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(o->b, fmt, ap) < 0)
		o->failed = true;
	va_end(ap);
}

/* The shortest text that reads back as v (1700000000.123, not ...229999). */
static const char *fmt_double(char *buf, size_t size, double v)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* {a="x",b="y"} with the extra label (le) last; "" when there are none. */
static void put_labels(struct out *o, const struct mt_desc *d,
                       const struct mt_metric *m, const char *extra_name,
                       const char *extra_value)
{
	char esc[512];
	bool any = false;

	for (size_t i = 0; i < d->nlabels; i++) {
		put(o, "%s%s=\"%s\"", any ? "," : "{", d->labels[i],
		    mt_label_escape(esc, sizeof(esc), m->values[i]));
		any = true;
	}
	if (extra_name) {
		put(o, "%s%s=\"%s\"", any ? "," : "{", extra_name, extra_value);
		any = true;
	}
	if (any)
		put(o, "}");
}

static void put_histogram(struct out *o, const struct mt_desc *d,
                          const struct mt_metric *m)
{
	uint64_t cum = 0;
	char le[32], num[40];

	for (size_t i = 0; i <= d->nbuckets; i++) {
		cum += m->buckets[i];
		if (i < d->nbuckets)
			snprintf(le, sizeof(le), "%g", d->buckets[i]);
		put(o, "%s_bucket", d->name);
		put_labels(o, d, m, "le", i < d->nbuckets ? le : "+Inf");
		put(o, " %" PRIu64 "\n", cum);
	}
	put(o, "%s_sum", d->name);
	put_labels(o, d, m, NULL, NULL);
	put(o, " %s\n%s_count", fmt_double(num, sizeof(num), m->sum), d->name);
	put_labels(o, d, m, NULL, NULL);
	put(o, " %" PRIu64 "\n", m->count);
}

static void put_metric(struct out *o, const struct mt_desc *d,
                       const struct mt_metric *m)
{
	char num[40];

	if (d->type == MT_HISTOGRAM) {
		put_histogram(o, d, m);
		return;
	}
	put(o, "%s", d->name);
	put_labels(o, d, m, NULL, NULL);
	put(o, " %s\n", fmt_double(num, sizeof(num), m->v));
}

static const char *type_name(enum mt_type t)
{
	return t == MT_COUNTER ? "counter"
	       : t == MT_GAUGE ? "gauge"
	                       : "histogram";
}

bool mt_render(struct evbuffer *out)
{
	struct out o = {.b = out};

	if (R.collect)
		R.collect(R.collect_arg);
	for (const struct mt_family *f = R.first; f != NULL; f = f->next) {
		put(&o, "# HELP %s %s\n# TYPE %s %s\n", f->d->name, f->d->help,
		    f->d->name, type_name(f->d->type));
		for (const struct mt_metric *m = f->first; m; m = m->next)
			put_metric(&o, f->d, m);
		if (f->overflow)
			put_metric(&o, f->d, f->overflow);
	}
	return !o.failed;
}
