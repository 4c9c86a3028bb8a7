pub mod coturn;
pub mod kamailio;
pub mod msrp_conn;
