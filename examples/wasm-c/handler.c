/*
 * A Tenement function in C: a WASI preview 1 program speaking CGI. The request arrives in environment
 * variables (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*) and on stdin; the response goes to stdout as
 * header lines, a blank line, then the body. Each tenant's DATA_DIR is its only file system.
 *
 *   GET  /            a greeting naming the tenant
 *   GET  /visits      counts visits in $DATA_DIR/visits (per tenant)
 *   POST /echo        sends the request body back
 *
 * Build: clang --target=wasm32-wasi -O2 -s handler.c -o handler.wasm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

static int visits(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/visits", env("DATA_DIR"));
  long count = 0;
  FILE *file = fopen(path, "r");
  if (file) {
    if (fscanf(file, "%ld", &count) != 1) count = 0;
    fclose(file);
  }
  count += 1;
  file = fopen(path, "w");
  if (!file) {
    fprintf(stderr, "cannot write %s\n", path);
    printf("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nstorage unavailable\n");
    return 0;
  }
  fprintf(file, "%ld\n", count);
  fclose(file);
  printf("Content-Type: application/json\r\n\r\n{\"tenant\":\"%s\",\"visits\":%ld}\n", env("TENEMENT_INSTANCE"), count);
  return 0;
}

static int echo(void) {
  long length = atol(env("CONTENT_LENGTH"));
  printf("Content-Type: %s\r\n\r\n", *env("CONTENT_TYPE") ? env("CONTENT_TYPE") : "application/octet-stream");
  char buffer[4096];
  size_t n;
  while (length > 0 && (n = fread(buffer, 1, sizeof buffer, stdin)) > 0) {
    fwrite(buffer, 1, n, stdout);
    length -= (long)n;
  }
  return 0;
}

int main(void) {
  const char *method = env("REQUEST_METHOD");
  const char *path = env("PATH_INFO");
  fprintf(stderr, "%s %s\n", method, path);
  if (strcmp(path, "/visits") == 0) return visits();
  if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0) return echo();
  if (strcmp(path, "/") == 0) {
    printf("Content-Type: text/plain\r\n\r\nHello from C, %s! (%s %s?%s)\n", env("TENEMENT_INSTANCE"), method, path, env("QUERY_STRING"));
    return 0;
  }
  printf("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno route for %s\n", path);
  return 0;
}
