declare module "kafkajs/src/network/requestQueue/index.js" {
  const RequestQueue: unknown;
  export default RequestQueue;
}
declare module "kafkajs/src/protocol/encoder.js" {
  const Encoder: unknown;
  export default Encoder;
}
