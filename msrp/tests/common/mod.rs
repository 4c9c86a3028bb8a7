pub mod coturn;
