//! The gRPC codec of the API: prost's, except that a request that is not a valid protobuf
//! message of its type is `INVALID_ARGUMENT` (the caller sent bad input) rather than tonic's
//! `INTERNAL`. Written by hand; the generated services name it in `build.rs`.

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Prost encoding and decoding; decoding errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ApiCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for ApiCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for ApiCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ApiDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ApiDecoder(self.0.decoder())
    }
}

/// Prost's decoder, reporting undecodable input as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ApiDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for ApiDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(src)
            .map_err(|e| Status::invalid_argument(format!("not a valid protobuf message: {}", e.message())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
