pub mod coturn;
pub mod kamailio;
