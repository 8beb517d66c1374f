declare module "kafkajs/src/network/requestQueue/index.js" {
  const RequestQueue: unknown;
  export default RequestQueue;
}
declare module "kafkajs/src/protocol/encoder.js" {
  const Encoder: unknown;
  export default Encoder;
}
declare module "kafkajs/src/broker/index.js" {
  const Broker: unknown;
  export default Broker;
}
