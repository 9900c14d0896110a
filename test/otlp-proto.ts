/**
 * The OTLP protobuf reader of the test receiver (test/otlp-receiver.ts) and the benchmark: decodeOtlpProto builds
 * the spans the tests look at (otlp-proto-decode.ts), countOtlpProto only counts them, checking every field
 * (otlp-proto-count.ts). Both are imported from here.
 */
export { decodeOtlpProto } from './otlp-proto-decode.ts';
export { countOtlpProto } from './otlp-proto-count.ts';
